-- Argo CD actions for connectemail.dev/EmailChannel (argocd-cm key
-- resource.customizations.actions.connectemail.dev_EmailChannel). Argo CD runs actions in its Lua
-- sandbox: base and table libraries and os.date/os.time, no string library. The client secret is
-- rotated on the channel's AzureAppRegistration (its child in Argo CD's resource tree), which has
-- the rotate action.
local paused = obj.metadata.annotations ~= nil and obj.metadata.annotations["connectemail.dev/paused"] == "true"
-- Manual is the schema's default mode.
local manual = obj.spec == nil or obj.spec.connect == nil or obj.spec.connect.mode == nil or obj.spec.connect.mode == "Manual"
local outdated = false
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "ConnectSecretOutdated" and c.status == "True" then
      outdated = true
    end
  end
end
local actions = {}
actions["pause"] = {["iconClass"] = "fa fa-fw fa-pause-circle", ["disabled"] = paused}
actions["resume"] = {["iconClass"] = "fa fa-fw fa-play-circle", ["disabled"] = not paused}
-- Manual mode, after a person entered the current client secret in Connect: the key ID is the
-- one the ConnectSecretOutdated condition names.
actions["acknowledge"] = {
  ["displayName"] = "Acknowledge secret entered in Connect",
  ["iconClass"] = "fa fa-fw fa-check-circle",
  ["disabled"] = not (manual and outdated),
  ["params"] = {{["name"] = "keyId"}},
}
return actions
