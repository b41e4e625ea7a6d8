-- Argo CD health for kubeopt.io/ModelOptimization (resource.customizations.health.kubeopt.io_ModelOptimization).
-- Reads the kstatus conditions the operator writes (Ready, Reconciling, Stalled, each with
-- observedGeneration; see operator/kubeopt/controller/conditions.py), in the operator's own order:
-- a status older than the spec is Progressing, Stalled=True is Degraded, Ready=True is Healthy,
-- spec.suspend (or Ready/Reconciling reason Suspended) is Suspended, anything else Progressing.
-- Uses only Lua's base library, so it runs under Argo CD's restricted VM.
local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  if obj.spec ~= nil and obj.spec.suspend == true then
    hs.status = "Suspended"
    hs.message = "spec.suspend is true and the operator has not reported a status yet"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Waiting for the kubeopt operator to report a status"
  return hs
end

local function stale(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

if stale(status.observedGeneration) then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubeopt operator to observe generation " .. tostring(generation) ..
    " (status describes generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local found = {}
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" or condition.type == "Reconciling" or condition.type == "Stalled" then
    found[condition.type] = condition
  end
end
for _, kind in ipairs({"Ready", "Reconciling", "Stalled"}) do
  local condition = found[kind]
  if condition ~= nil and stale(condition.observedGeneration) then
    hs.status = "Progressing"
    hs.message = "Waiting for the kubeopt operator to observe generation " .. tostring(generation) ..
      " (condition " .. kind .. " describes generation " .. tostring(condition.observedGeneration) .. ")"
    return hs
  end
end

local function text(condition)
  local message = condition.message
  if message == nil or message == "" then
    message = condition.reason or ""
  end
  return message
end

local stalled, ready, reconciling = found["Stalled"], found["Ready"], found["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. text(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end
local suspended = (obj.spec ~= nil and obj.spec.suspend == true) or status.phase == "Suspended" or
  (ready ~= nil and ready.reason == "Suspended") or (reconciling ~= nil and reconciling.reason == "Suspended")
if suspended then
  hs.status = "Suspended"
  if ready ~= nil and ready.reason == "Suspended" then
    hs.message = text(ready)
  else
    hs.message = "spec.suspend is true; waiting for the kubeopt operator to suspend the Jobs"
  end
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "phase is Failed"
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil then
  hs.message = text(reconciling)
elseif ready ~= nil then
  hs.message = text(ready)
else
  hs.message = "Waiting for the kubeopt operator's Ready condition"
end
return hs
