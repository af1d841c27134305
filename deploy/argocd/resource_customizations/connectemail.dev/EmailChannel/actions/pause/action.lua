-- connectemail.dev/paused=true: the operator leaves Microsoft and Webex Connect untouched (status
-- still reports; Argo CD shows the resource as Suspended).
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["connectemail.dev/paused"] = "true"
return obj
