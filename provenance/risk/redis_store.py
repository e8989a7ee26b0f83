"""The risk state in Redis: one Lua script per step, so each step is atomic.

Keys (under a prefix, ``cardtrace:risk:`` by default), all holding pseudonyms only:

- ``w:<scope>:<id>``: a sorted set per buyer, instrument, device and IP; member
  ``<ref>|<units>``, score the sale's time in ms. Exact: small counts must be right.
- ``m:<merchant>:<c|u><size>:<bucket>``: a merchant's counts and sums in time buckets of
  10 s, 1 min and 15 min (for the 1 min, 1 h and 24 h windows), each key expiring with
  its window. A shop's volume is large, so its windows are bucketed: a window of W
  seconds covers between W minus one bucket and W.
- ``d:<set>:<owner>``: a sorted set of distinct members (instruments or buyers) with
  their last time; trimmed to 24 h.
- ``bd:<buyer>`` (hash device -> last ms) and ``bp:<buyer>`` (hash n, u, max, region):
  the buyer's devices and history, kept 180 days after the last sale.
- ``t:instrument``, ``t:device``: sets of pseudonyms tainted by partner notices.
- ``h:<ref>`` (what a hold added) and ``r:<ref>`` (recorded): make each step idempotent.
"""

from __future__ import annotations

from typing import Any

import redis

from provenance.risk.context import SaleFacts
from provenance.risk.errors import StoreUnavailableError
from provenance.risk.features import (
    DISTINCT_WINDOW_S,
    HISTORY_TTL_S,
    Distinct,
    Observation,
    Scope,
    Window,
)
from provenance.risk.store import TaintKind, _ms, distinct_pairs

_EXACT = (Scope.BUYER, Scope.INSTRUMENT, Scope.DEVICE, Scope.IP)
_DISTINCT = tuple(Distinct)
BUCKETS = ((60, 10), (3600, 60), (86400, 900))  # window seconds, bucket seconds

# KEYS: 1 h:<ref>, 2 r:<ref>, 3-6 exact windows (b, i, d, p), 7-11 distinct sets,
#       12 bd:<buyer>, 13 bp:<buyer>, 14 t:instrument, 15 t:device
# ARGV: 1 mode (read|hold|record|release), 2 time ms, 3 window member, 4 units,
#       5 exact-window presence "1101", 6 distinct presence "11011", 7-11 distinct members,
#       12 device ("" if none), 13 instrument, 14 region, 15 merchant prefix ("" if none)
_SCRIPT = """
local mode = ARGV[1]
local now = tonumber(ARGV[2])
local member = ARGV[3]
local units = tonumber(ARGV[4])
local wpresent = ARGV[5]
local dpresent = ARGV[6]
local device = ARGV[12]
local instrument = ARGV[13]
local region = ARGV[14]
local mprefix = ARGV[15]
local DAY = 86400000
local HIST = @HISTORY_MS@
local BUCKETS = {{60000, 10000}, {3600000, 60000}, {86400000, 900000}}

local function merchant_add(sign)
  if mprefix == '' then return end
  for _, b in ipairs(BUCKETS) do
    local bucket = math.floor(now / b[2])
    local ttl = b[1] + b[2]
    local ck = mprefix .. 'c' .. b[2] .. ':' .. bucket
    local uk = mprefix .. 'u' .. b[2] .. ':' .. bucket
    redis.call('INCRBY', ck, sign)
    redis.call('INCRBY', uk, sign * units)
    redis.call('PEXPIRE', ck, ttl)
    redis.call('PEXPIRE', uk, ttl)
  end
end

local function add()
  for i = 1, 4 do
    if string.sub(wpresent, i, i) == '1' then
      local k = KEYS[2 + i]
      redis.call('ZADD', k, now, member)
      redis.call('ZREMRANGEBYSCORE', k, '-inf', now - DAY)
      redis.call('PEXPIRE', k, DAY + 60000)
    end
  end
  merchant_add(1)
  local added = {}
  for i = 1, 5 do
    if string.sub(dpresent, i, i) == '1' then
      local k = KEYS[6 + i]
      local m = ARGV[6 + i]
      local old = redis.call('ZSCORE', k, m)
      redis.call('ZADD', k, now, m)
      redis.call('ZREMRANGEBYSCORE', k, '-inf', now - DAY)
      redis.call('PEXPIRE', k, DAY + 60000)
      if not old then added[#added + 1] = tostring(i) end
    end
  end
  return table.concat(added, ',')
end

if mode == 'release' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  local added = redis.call('GET', KEYS[1])
  if not added then return 0 end
  for i = 1, 4 do
    if string.sub(wpresent, i, i) == '1' then redis.call('ZREM', KEYS[2 + i], member) end
  end
  merchant_add(-1)
  for i in string.gmatch(added, '%d') do
    local n = tonumber(i)
    redis.call('ZREM', KEYS[6 + n], ARGV[6 + n])
  end
  redis.call('DEL', KEYS[1])
  return 1
end

if mode == 'record' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  if redis.call('EXISTS', KEYS[1]) == 0 then add() end
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', DAY + 3600000)
  redis.call('HINCRBY', KEYS[13], 'n', 1)
  redis.call('HINCRBY', KEYS[13], 'u', units)
  local top = tonumber(redis.call('HGET', KEYS[13], 'max') or '0')
  if units > top then redis.call('HSET', KEYS[13], 'max', units) end
  if region ~= '' then redis.call('HSET', KEYS[13], 'region', region) end
  redis.call('PEXPIRE', KEYS[13], HIST)
  if device ~= '' then
    redis.call('HSET', KEYS[12], device, now)
    redis.call('PEXPIRE', KEYS[12], HIST)
  end
  return 1
end

local known = redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1
local held = 0
if mode == 'hold' and not known then
  redis.call('SET', KEYS[1], add(), 'PX', DAY + 3600000)
  held = 1
end
local included = known or held == 1

local out = {held}
for i = 1, 4 do
  if string.sub(wpresent, i, i) == '1' then
    local k = KEYS[2 + i]
    local rows = redis.call('ZRANGEBYSCORE', k, '(' .. (now - DAY), '+inf', 'WITHSCORES')
    local c1, c2, c3, s1, s2, s3 = 0, 0, 0, 0, 0, 0
    local self_seen = false
    for j = 1, #rows, 2 do
      if rows[j] == member then self_seen = true end
      local t = tonumber(rows[j + 1])
      local u = tonumber(string.match(rows[j], '|(%d+)$'))
      c3 = c3 + 1; s3 = s3 + u
      if t > now - 3600000 then c2 = c2 + 1; s2 = s2 + u end
      if t > now - 60000 then c1 = c1 + 1; s1 = s1 + u end
    end
    if not included and not self_seen then
      c1 = c1 + 1; c2 = c2 + 1; c3 = c3 + 1; s1 = s1 + units; s2 = s2 + units; s3 = s3 + units
    end
    for _, v in ipairs({c1, c2, c3, s1, s2, s3}) do out[#out + 1] = v end
  else
    for _ = 1, 6 do out[#out + 1] = 0 end
  end
end
if mprefix ~= '' then
  local counts, sums = {}, {}
  for _, b in ipairs(BUCKETS) do
    local last = math.floor(now / b[2])
    local first = math.floor((now - b[1]) / b[2]) + 1
    local ks = {}
    for bucket = first, last do
      ks[#ks + 1] = mprefix .. 'c' .. b[2] .. ':' .. bucket
      ks[#ks + 1] = mprefix .. 'u' .. b[2] .. ':' .. bucket
    end
    local vals = redis.call('MGET', unpack(ks))
    local c, s = 0, 0
    for j = 1, #vals, 2 do
      c = c + tonumber(vals[j] or '0'); s = s + tonumber(vals[j + 1] or '0')
    end
    if not included then c = c + 1; s = s + units end
    counts[#counts + 1] = c; sums[#sums + 1] = s
  end
  for _, v in ipairs(counts) do out[#out + 1] = v end
  for _, v in ipairs(sums) do out[#out + 1] = v end
else
  for _ = 1, 6 do out[#out + 1] = 0 end
end
for i = 1, 5 do
  if string.sub(dpresent, i, i) == '1' then
    local k = KEYS[6 + i]
    local n = redis.call('ZCOUNT', k, '(' .. (now - DAY), '+inf')
    local s = redis.call('ZSCORE', k, ARGV[6 + i])
    if not s or tonumber(s) <= now - DAY then n = n + 1 end
    out[#out + 1] = n
  else
    out[#out + 1] = 0
  end
end
out[#out + 1] = (device ~= '' and redis.call('HEXISTS', KEYS[12], device)) or 0
local profile = redis.call('HMGET', KEYS[13], 'n', 'u', 'max', 'region')
out[#out + 1] = tonumber(profile[1] or '0')
out[#out + 1] = tonumber(profile[2] or '0')
out[#out + 1] = tonumber(profile[3] or '0')
out[#out + 1] = profile[4] or ''
out[#out + 1] = (instrument ~= '' and redis.call('SISMEMBER', KEYS[14], instrument)) or 0
out[#out + 1] = (device ~= '' and redis.call('SISMEMBER', KEYS[15], device)) or 0
return out
""".replace("@HISTORY_MS@", str(HISTORY_TTL_S * 1000))

assert DISTINCT_WINDOW_S == 86400 and BUCKETS[-1][0] == 86400


class RedisStore:
    """The risk state in Redis (see the module docstring for the keys).

    Args:
        client: a ``redis.Redis`` client (``decode_responses`` either way).
        prefix: the key prefix; different prefixes are independent states.
    """

    def __init__(self, client: redis.Redis, prefix: str = "cardtrace:risk:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_SCRIPT)

    def _call(self, mode: str, facts: SaleFacts) -> Any:
        p = self.prefix
        k = facts.keys
        ids = {
            Scope.BUYER: k.buyer,
            Scope.INSTRUMENT: k.instrument,
            Scope.DEVICE: k.device,
            Scope.IP: k.ip,
        }
        pairs = {d: (o, m) for d, o, m in distinct_pairs(facts)}
        keys = [f"{p}h:{facts.ref}", f"{p}r:{facts.ref}"]
        keys += [f"{p}w:{s.value}:{ids[s] or '-'}" for s in _EXACT]
        keys += [f"{p}d:{d.value}:{pairs[d][0] if d in pairs else '-'}" for d in _DISTINCT]
        keys += [f"{p}bd:{k.buyer}", f"{p}bp:{k.buyer}", f"{p}t:instrument", f"{p}t:device"]
        args: list[str | int] = [
            mode,
            _ms(facts.at),
            f"{facts.ref}|{facts.amount_units}",
            facts.amount_units,
            "".join("1" if ids[s] else "0" for s in _EXACT),
            "".join("1" if d in pairs else "0" for d in _DISTINCT),
            *(pairs[d][1] if d in pairs else "" for d in _DISTINCT),
            k.device or "",
            k.instrument or "",
            facts.region or "",
            f"{p}m:{facts.merchant}:",
        ]
        try:
            return self._script(keys=keys, args=args)
        except redis.RedisError as e:
            raise StoreUnavailableError(
                f"the risk state in Redis is unavailable: {type(e).__name__}"
            ) from e

    def observe(self, facts: SaleFacts, *, hold: bool) -> Observation:
        out = self._call("hold" if hold else "read", facts)
        windows = {}
        for index, scope in enumerate((*_EXACT, Scope.MERCHANT)):
            values = [int(v) for v in out[1 + 6 * index : 7 + 6 * index]]
            windows[scope] = Window(*values)
        present = {d for d, _, _ in distinct_pairs(facts)}
        distinct = {d: int(out[31 + i]) for i, d in enumerate(_DISTINCT) if d in present}
        region = out[40]
        if isinstance(region, bytes):
            region = region.decode()
        return Observation(
            windows={s: w for s, w in windows.items() if s is Scope.MERCHANT or _present(facts, s)},
            distinct=distinct,
            device_seen=bool(int(out[36])),
            history_count=int(out[37]),
            history_units=int(out[38]),
            history_max_units=int(out[39]),
            previous_region=region or None,
            instrument_tainted=bool(int(out[41])),
            device_tainted=bool(int(out[42])),
            held=bool(int(out[0])),
        )

    def release(self, facts: SaleFacts) -> None:
        self._call("release", facts)

    def record(self, facts: SaleFacts) -> bool:
        return bool(int(self._call("record", facts)))

    def mark_tainted(self, kind: TaintKind, pseudonym: str) -> None:
        try:
            self.client.sadd(f"{self.prefix}t:{kind.value}", pseudonym)
        except redis.RedisError as e:
            raise StoreUnavailableError(
                f"the risk state in Redis is unavailable: {type(e).__name__}"
            ) from e

    def reset(self) -> None:
        """Delete every key under this store's prefix (never the whole database)."""
        batch: list[Any] = []
        for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)


def _present(facts: SaleFacts, scope: Scope) -> bool:
    k = facts.keys
    return {
        Scope.BUYER: True,
        Scope.INSTRUMENT: k.instrument is not None,
        Scope.DEVICE: k.device is not None,
        Scope.IP: k.ip is not None,
        Scope.MERCHANT: True,
    }[scope]
