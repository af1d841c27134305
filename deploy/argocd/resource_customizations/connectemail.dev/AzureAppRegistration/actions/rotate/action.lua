-- Issues a new client secret now: the operator rotates whenever connectemail.dev/rotate takes a
-- new value (here the current time, UTC); the previous secret is revoked as after any rotation.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["connectemail.dev/rotate"] = os.date("!%Y-%m-%dT%XZ")
return obj
