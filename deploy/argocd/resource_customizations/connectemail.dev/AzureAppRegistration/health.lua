-- Argo CD health check for connectemail.dev/AzureAppRegistration
-- (argocd-cm key: resource.customizations.health.connectemail.dev_AzureAppRegistration).
local degraded = {OperatorCredentialFailed = true, PrincipalNotFound = true, InvalidSpec = true, PermissionDenied = true, UnknownPermission = true, SecretRejected = true, SecretExpired = true}
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and (obj.status.observedGeneration or 0) < obj.metadata.generation then
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    hs.message = c.message or ""
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.reason == "Paused" then
      hs.status = "Suspended"
    elseif degraded[c.reason] then
      hs.status = "Degraded"
    end
  end
end
-- A problem with consent or the credential degrades even while Ready is still settling.
for _, c in ipairs(obj.status.conditions) do
  if c.status == "False" and degraded[c.reason] then
    hs.status = "Degraded"
    hs.message = c.type .. ": " .. (c.message or "")
  end
end
return hs
