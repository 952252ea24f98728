--- @include "call"
--- @include "split"
--- @include "contains"
--- @include "tally"
--- @include "worker_event"
-- Pay worker wid for order okey (oid): each line {reason, amount} (minor units of
-- currency) once per order and reason, and a completed job (job true) counted
-- once; the order's 'paid' lists what was paid, so a step done again never pays
-- twice. An entry goes into the worker's ledger (d:{city}:ledger:<worker>: its
-- newest LEDGER_KEEP entries, JSON), the city's day book (d:{city}:book:<day>:
-- '<worker>:<currency>:<reason>' -> sum, and '...:jobs') and the worker's per-day
-- counters ('e:<day>:<currency>:<reason>'), and is a worker event 'earned' on the
-- city's stream. The ledger and the book end LEDGER_DAYS after their last entry.
local function pay(okey, oid, wid, currency, lines, job, now)
  local prefix = city_prefix(okey)
  local paid = split(call('HGET', okey, O.paid))
  local ledger = ledger_key(prefix, wid)
  local book = book_key(prefix, math.floor(now / 86400000))
  local function count(reason, amount)
    call('HINCRBY', book, wid .. ':' .. currency .. ':' .. reason, amount)
    tally(prefix, wid, now, PERF_KIND.earned, currency .. ':' .. reason, amount)
  end
  if job and not contains(paid, 'job') then
    count(JOBS_DONE, 1)
    paid[#paid + 1] = 'job'
  end
  for _, line in ipairs(lines) do
    local reason, amount = line[1], line[2]
    if amount > 0 and not contains(paid, reason) then
      count(reason, amount)
      paid[#paid + 1] = reason
      call('LPUSH', ledger, cjson.encode({order_id = oid, reason = reason, amount = amount,
                                          currency = currency, at = now}))
      worker_event(worker_key(prefix, wid), wid, WORKER_FACT.earned, now, {
        order_id = oid, reason = reason, amount = amount, currency = currency})
    end
  end
  call('HSET', okey, O.paid, table.concat(paid, ','))
  call('LTRIM', ledger, 0, LEDGER_KEEP - 1)
  call('PEXPIRE', ledger, LEDGER_DAYS * 86400000)
  call('PEXPIRE', book, LEDGER_DAYS * 86400000)
end
