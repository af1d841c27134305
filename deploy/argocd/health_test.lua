-- Runs the health checks on sample objects: `lua5.4 deploy/argocd/health_test.lua` (from the repo
-- root). Exits non-zero on the first mismatch.
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local function check(script, name, object, want)
  obj = object
  local hs = dofile(dir .. "/" .. script)
  if hs.status ~= want then
    io.stderr:write(string.format("%s / %s: got %s (%s), want %s\n", script, name, hs.status, hs.message or "", want))
    os.exit(1)
  end
  print(string.format("ok  %-26s %-42s %s", script, name, hs.status))
end
local function cond(type, status, reason, message)
  return {type = type, status = status, reason = reason, message = message or reason}
end
local meta = {generation = 2}

check("emailchannel.lua", "no status yet", {metadata = meta}, "Progressing")
check("emailchannel.lua", "old generation", {metadata = meta, status = {observedGeneration = 1, conditions = {cond("Ready", "True", "Reconciled")}}}, "Progressing")
check("emailchannel.lua", "ready", {metadata = meta, status = {observedGeneration = 2, conditions = {cond("Ready", "True", "Reconciled")}}}, "Healthy")
check("emailchannel.lua", "waiting for a person in Connect", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("ConnectAssetSynced", "False", "WaitingForAcknowledgement"),
  cond("ConnectAuthorized", "False", "SignInRequired")}}}, "Progressing")
check("emailchannel.lua", "forwarding blocked", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("OutboundForwardingAllowed", "False", "ForwardingBlockedByPolicy")}}}, "Degraded")
check("emailchannel.lua", "no Exchange rights", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("MailboxConfigured", "False", "PermissionDenied")}}}, "Degraded")
check("emailchannel.lua", "Connect token expired", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("ConnectAssetSynced", "False", "ConnectUnauthorized")}}}, "Degraded")
check("emailchannel.lua", "paused", {metadata = meta, status = {observedGeneration = 2, conditions = {cond("Ready", "False", "Paused")}}}, "Suspended")

check("azureappregistration.lua", "no status yet", {metadata = meta}, "Progressing")
check("azureappregistration.lua", "ready", {metadata = meta, status = {observedGeneration = 2, conditions = {cond("Ready", "True", "Reconciled")}}}, "Healthy")
check("azureappregistration.lua", "verifying a new secret", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("CredentialReady", "False", "WaitingForPropagation")}}}, "Progressing")
check("azureappregistration.lua", "unknown permission", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "InProgress"), cond("ConsentGranted", "False", "UnknownPermission")}}}, "Degraded")
check("azureappregistration.lua", "operator lacks Graph rights", {metadata = meta, status = {observedGeneration = 2, conditions = {
  cond("Ready", "False", "PermissionDenied")}}}, "Degraded")
check("azureappregistration.lua", "paused", {metadata = meta, status = {observedGeneration = 2, conditions = {cond("Ready", "False", "Paused")}}}, "Suspended")
print("all health checks behave")
