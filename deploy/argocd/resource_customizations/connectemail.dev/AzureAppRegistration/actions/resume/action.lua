-- Removes connectemail.dev/paused: the operator reconciles again.
if obj.metadata.annotations ~= nil then
  obj.metadata.annotations["connectemail.dev/paused"] = nil
end
return obj
