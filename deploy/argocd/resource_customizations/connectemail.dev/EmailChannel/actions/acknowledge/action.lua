-- Manual mode: records that a person entered the current client secret in Webex Connect, as
-- `kubectl annotate emailchannel NAME --overwrite connectemail.dev/connect-secret-applied=KEY_ID`
-- does. The key ID is a parameter: the channel's status names the current key only inside the
-- ConnectSecretOutdated message, which Argo CD's sandbox (no string library) cannot parse.
local keyId = actionParams["keyId"]
if keyId == nil or keyId == "" then
  error("acknowledge needs the parameter keyId: the key ID at the end of the ConnectSecretOutdated condition's message", 0)
end
if #keyId ~= 36 then
  error("keyId must be the 36-character key ID of the client secret, as the ConnectSecretOutdated condition names it", 0)
end
if obj.spec.connect ~= nil and obj.spec.connect.mode == "Api" then
  error("acknowledge applies to Manual mode only: in Api mode the operator pushes the secret to Connect itself", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["connectemail.dev/connect-secret-applied"] = keyId
return obj
