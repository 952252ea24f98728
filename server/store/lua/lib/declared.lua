-- Declared keys: a script touches only keys its caller names in KEYS (Redis
-- Cluster routes a script by them), through call(), which refuses any other.
-- A script that finds it needs keys its caller could not know (the holders of
-- an offer, a worker's skills) plans first: it want()s every key it will touch,
-- reading only declared ones, and before any write answers need() with the keys
-- that were missing; the store calls it again with them (server/store/engine.py).
-- Included before any helper that reads DECLARED or MISSING, so it runs first.

redis.replicate_commands()

local DECLARED = {}
for _, k in ipairs(KEYS) do DECLARED[k] = true end
local MISSING = {}
