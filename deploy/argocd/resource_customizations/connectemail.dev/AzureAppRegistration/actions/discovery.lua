-- Argo CD actions for connectemail.dev/AzureAppRegistration (argocd-cm key
-- resource.customizations.actions.connectemail.dev_AzureAppRegistration). Argo CD runs actions in
-- its Lua sandbox: base and table libraries and os.date/os.time, no string library.
local paused = obj.metadata.annotations ~= nil and obj.metadata.annotations["connectemail.dev/paused"] == "true"
local actions = {}
-- A rotation requested while paused would only start after resume: resume first.
actions["rotate"] = {["displayName"] = "Rotate client secret", ["iconClass"] = "fa fa-fw fa-key", ["disabled"] = paused}
actions["pause"] = {["iconClass"] = "fa fa-fw fa-pause-circle", ["disabled"] = paused}
actions["resume"] = {["iconClass"] = "fa fa-fw fa-play-circle", ["disabled"] = not paused}
return actions
