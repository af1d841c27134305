-- Argo CD health check for connectemail.dev/EmailChannel
-- (argocd-cm key: resource.customizations.health.connectemail.dev_EmailChannel).
-- Degraded: something an administrator must fix; Progressing: the operator or a person in Connect
-- (sign-in, entering a rotated secret) still has to act; Healthy: Ready.
local degraded = {
  InvalidSpec = true, PermissionDenied = true, UnknownPermission = true,
  ForwardingBlockedByPolicy = true, ExternalError = true, ConnectUnauthorized = true,
  OperatorCredentialFailed = true, MailboxClaimed = true, PrincipalNotFound = true,
}
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
      return {status = "Healthy", message = hs.message}
    elseif c.reason == "Paused" then
      return {status = "Suspended", message = hs.message}
    end
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.status == "False" and degraded[c.reason] then
    return {status = "Degraded", message = c.type .. ": " .. (c.message or "")}
  end
end
return hs
