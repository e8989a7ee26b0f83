"""The risk state in Redis: one Lua script per step, so each step is atomic.

Keys (under a prefix, ``cardtrace:risk:`` by default), all holding pseudonyms only:

- ``w:<scope>:<id>``: a sorted set per buyer, instrument, device, IP and merchant;
  member ``<ref>|<units>``, score the sale's time in ms; trimmed to 24 h. Beside it, the
  string ``w:<scope>:<id>~`` keeps, for the 1 min, 1 h and 24 h windows, the boundary up
  to which sales that left the window were taken out, the count and sum of the sales
  after it, and the time the next of them leaves (the oldest one's; ``9e15`` if none):
  ``b1 b2 b3 c1 c2 c3 s1 s2 s3 n1 n2 n3``, twelve big-endian doubles (96 bytes; exact
  integers below 2**53; unpacked by ``struct`` in far less time than text is parsed). A
  window's sum costs O(1) a sale (amortised) even for a shop selling all day, and the
  set is looked up only when a sale has left the window. It expires with its set;
  without it (a new key) the windows are counted from the set. Only this script may
  write the sets: a sale added or taken out by anything else would be missing from (or
  taken twice out of) the stored figures.
- ``d:<set>:<owner>``: a sorted set of distinct members (instruments or buyers) with
  their last time; trimmed to 24 h.
- ``bd:<buyer>`` (hash device -> last ms) and ``bp:<buyer>`` (hash n, u, max, region):
  the buyer's devices and history, kept 180 days after the last sale.
- ``t:instrument``, ``t:device``: sets of pseudonyms tainted by partner notices.
- ``h:<ref>`` (what a hold added, ``|``, the region it saw) and ``r:<ref>`` (recorded):
  make each step idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
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

_SCOPES = (Scope.BUYER, Scope.INSTRUMENT, Scope.DEVICE, Scope.IP, Scope.MERCHANT)
_DISTINCT = tuple(Distinct)

# KEYS: 1 h:<ref>, 2 r:<ref>, 3-7 windows (b, i, d, p, m), 8-12 distinct sets,
#       13 bd:<buyer>, 14 bp:<buyer>, 15 t:instrument, 16 t:device
# ARGV: 1 mode (read|hold|record|release), 2 time ms, 3 window member, 4 units,
#       5 window presence "11011", 6 distinct presence "11011", 7-11 distinct members,
#       12 device ("" if none), 13 instrument, 14 region
# Numbers reach Redis commands as strings made once (ARGV[2], the constants below): a
# Lua number given to redis.call is formatted anew each time, which costs more than the
# command itself.
_SCRIPT = """
local mode = ARGV[1]
local at = ARGV[2]
local now = tonumber(at)
local member = ARGV[3]
local units = tonumber(ARGV[4])
local wpresent = ARGV[5]
local dpresent = ARGV[6]
local device = ARGV[12]
local instrument = ARGV[13]
local region = ARGV[14]
local DAY = 86400000
local TTL = '@TTL_MS@'
local HOLD_TTL = '@HOLD_TTL_MS@'
local HIST = '@HISTORY_MS@'
local WINDOWS = {60000, 3600000, DAY}
local STATE = '>dddddddddddd'
local NEVER = 9e15
local PAGE, PAGE_ARG = 8, '8'
local day_ago
local function since_day()
  if not day_ago then day_ago = string.format('%d', now - DAY) end
  return day_ago
end

local function amount(m) return tonumber(string.match(m, '|(%d+)$')) end

-- Take the sales in (b, nb], which have left a window, out of its count c and sum s.
-- Returns the new count and sum and the time the next sale leaves (NEVER if none).
local function depart(k, b, nb, c, s)
  local after = '(' .. string.format('%d', b)
  local page = redis.call('ZRANGEBYSCORE', k, after, '+inf', 'WITHSCORES', 'LIMIT', '0', PAGE_ARG)
  for i = 1, #page, 2 do
    local t = tonumber(page[i + 1])
    if t > nb then return c, s, t end
    c = c - 1
    s = s - amount(page[i])
  end
  if #page < 2 * PAGE then return c, s, NEVER end
  -- More left at once (after a quiet spell): the rest in one range, then the next one.
  local upto = string.format('%d', nb)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, after, upto, 'LIMIT', PAGE_ARG, '-1')) do
    c = c - 1
    s = s - amount(m)
  end
  local next = redis.call('ZRANGEBYSCORE', k, '(' .. upto, '+inf', 'WITHSCORES', 'LIMIT', '0', '1')
  return c, s, tonumber(next[2]) or NEVER
end

-- Each window key k has a string k~ holding twelve numbers (big-endian doubles): for
-- w = 1..3, b<w> (the boundary up to which sales that left window w were taken out),
-- c<w> and s<w> (the count and sum of the sales after it) and n<w> (no sale after b<w>
-- is older: the time the next one leaves). Each sale leaves each window once, so counts
-- and sums cost O(1) a sale, amortised, and the set is read only when now - width
-- reaches n<w>.
-- sign: 1 adds this sale, -1 takes it back (both write the state), 0 only reads.
-- Returns counts and sums.
local function window(k, sign)
  local sk = k .. '~'
  local st = redis.call('GET', sk)
  local b, c, s, n = {}, {}, {}, {}
  local behind = {}
  local expired = false
  if st and #st == 96 then
    b[1], b[2], b[3], c[1], c[2], c[3], s[1], s[2], s[3], n[1], n[2], n[3] =
      struct.unpack(STATE, st)
    for w = 1, 3 do
      local nb = now - WINDOWS[w]
      if nb >= b[w] then
        if nb >= n[w] then
          local before = c[w]
          c[w], s[w], n[w] = depart(k, b[w], nb, c[w], s[w])
          if w == 3 and c[w] ~= before then expired = true end
        end
        b[w] = nb
      else
        behind[w] = nb
      end
    end
  else
    -- No state (a new key): count what the set holds in the last 24 h.
    for w = 1, 3 do b[w], c[w], s[w], n[w] = now - WINDOWS[w], 0, 0, NEVER end
    local held = redis.call('ZRANGEBYSCORE', k, '(' .. since_day(), '+inf', 'WITHSCORES')
    for i = 1, #held, 2 do
      local t, u = tonumber(held[i + 1]), amount(held[i])
      for w = 1, 3 do
        if t > b[w] then
          c[w], s[w] = c[w] + 1, s[w] + u
          if t < n[w] then n[w] = t end
        end
      end
    end
  end
  if sign ~= 0 then
    local changed
    if sign > 0 then
      changed = redis.call('ZADD', k, at, member)
    else
      changed = redis.call('ZREM', k, member)
    end
    for w = 1, 3 do
      if now > b[w] then
        if changed == 1 then
          c[w] = c[w] + sign
          s[w] = s[w] + sign * units
        end
        if sign > 0 and now < n[w] then n[w] = now end
      end
    end
    redis.call('PEXPIRE', k, TTL)
    -- Sales leave the set when they leave the 24 h window (then, and only then).
    if expired then redis.call('ZREMRANGEBYSCORE', k, '-inf', since_day()) end
    redis.call('SET', sk, struct.pack(STATE, b[1], b[2], b[3], c[1], c[2], c[3],
      s[1], s[2], s[3], n[1], n[2], n[3]), 'PX', TTL)
  end
  -- A read writes nothing (so it trims nothing): the next write redoes its look-ups.
  for w, nb in pairs(behind) do
    -- A time before the boundary (concurrent sales, a replay): the stored figures cover
    -- (b, +inf]; add the sales in (nb, b], as few as the clocks are apart.
    local from, to = '(' .. string.format('%d', nb), string.format('%d', b[w])
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, from, to)) do
      c[w] = c[w] + 1
      s[w] = s[w] + amount(m)
    end
  end
  return {c, s}
end

local results = {}
local function add()
  for i = 1, 5 do
    if string.sub(wpresent, i, i) == '1' then results[i] = window(KEYS[2 + i], 1) end
  end
  local added = ''
  for i = 1, 5 do
    if string.sub(dpresent, i, i) == '1' then
      local k = KEYS[7 + i]
      if redis.call('ZADD', k, at, ARGV[6 + i]) == 1 then
        added = added .. i
        -- The set grows only by a new member: members older than 24 h go then (counts
        -- read the last 24 h only, so a stale member is never counted meanwhile).
        redis.call('ZREMRANGEBYSCORE', k, '-inf', since_day())
      end
      redis.call('PEXPIRE', k, TTL)
    end
  end
  return added
end

if mode == 'release' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  local hold = redis.call('GET', KEYS[1])
  if not hold then return 0 end
  local added = string.match(hold, '^([^|]*)')
  for i = 1, 5 do
    if string.sub(wpresent, i, i) == '1' then window(KEYS[2 + i], -1) end
  end
  for i in string.gmatch(added, '%d') do
    local n = tonumber(i)
    redis.call('ZREM', KEYS[7 + n], ARGV[6 + n])
  end
  redis.call('DEL', KEYS[1])
  return 1
end

if mode == 'record' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  local hold = redis.call('GET', KEYS[1])
  if hold then
    if region == '' then region = string.match(hold, '|(.*)$') or '' end
    redis.call('DEL', KEYS[1])
  else
    add()
  end
  redis.call('SET', KEYS[2], '1', 'PX', HOLD_TTL)
  local p = redis.call('HMGET', KEYS[14], 'n', 'u', 'max')
  local n = string.format('%d', tonumber(p[1] or '0') + 1)
  local u = string.format('%d', tonumber(p[2] or '0') + units)
  local top = p[3]
  if not top or units > tonumber(top) then top = ARGV[4] end
  if region ~= '' then
    redis.call('HSET', KEYS[14], 'n', n, 'u', u, 'max', top, 'region', region)
  else
    redis.call('HSET', KEYS[14], 'n', n, 'u', u, 'max', top)
  end
  redis.call('PEXPIRE', KEYS[14], HIST)
  if device ~= '' then
    redis.call('HSET', KEYS[13], device, at)
    redis.call('PEXPIRE', KEYS[13], HIST)
  end
  return 1
end

local known = redis.call('EXISTS', KEYS[1], KEYS[2]) > 0
local held = 0
if mode == 'hold' and not known then
  redis.call('SET', KEYS[1], add() .. '|' .. region, 'PX', HOLD_TTL)
  held = 1
end
local included = known or held == 1

local out = {held}
for i = 1, 5 do
  if string.sub(wpresent, i, i) == '1' then
    local k = KEYS[2 + i]
    local r = results[i]
    if r == nil then
      r = window(k, 0)
      if not included and not redis.call('ZSCORE', k, member) then
        for w = 1, 3 do
          r[1][w] = r[1][w] + 1
          r[2][w] = r[2][w] + units
        end
      end
    end
    for w = 1, 3 do out[#out + 1] = r[1][w] end
    for w = 1, 3 do out[#out + 1] = r[2][w] end
  else
    for _ = 1, 6 do out[#out + 1] = 0 end
  end
end
for i = 1, 5 do
  if string.sub(dpresent, i, i) == '1' then
    local k = KEYS[7 + i]
    local n = redis.call('ZCOUNT', k, '(' .. since_day(), '+inf')
    if held == 0 then
      -- Not just added: count this sale's member if the set does not hold it (recently).
      local s = redis.call('ZSCORE', k, ARGV[6 + i])
      if not s or tonumber(s) <= now - DAY then n = n + 1 end
    end
    out[#out + 1] = n
  else
    out[#out + 1] = 0
  end
end
out[#out + 1] = (device ~= '' and redis.call('HEXISTS', KEYS[13], device)) or 0
local profile = redis.call('HMGET', KEYS[14], 'n', 'u', 'max', 'region')
out[#out + 1] = tonumber(profile[1] or '0')
out[#out + 1] = tonumber(profile[2] or '0')
out[#out + 1] = tonumber(profile[3] or '0')
out[#out + 1] = profile[4] or ''
out[#out + 1] = (instrument ~= '' and redis.call('SISMEMBER', KEYS[15], instrument)) or 0
out[#out + 1] = (device ~= '' and redis.call('SISMEMBER', KEYS[16], device)) or 0
return out
"""
for _name, _value in (
    ("@TTL_MS@", (DISTINCT_WINDOW_S + 60) * 1000),
    ("@HOLD_TTL_MS@", (DISTINCT_WINDOW_S + 3600) * 1000),
    ("@HISTORY_MS@", HISTORY_TTL_S * 1000),
):
    _SCRIPT = _SCRIPT.replace(_name, str(_value))

assert DISTINCT_WINDOW_S == 86400


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

    def _keys_args(self, mode: str, facts: SaleFacts) -> tuple[list[str], list[str | int]]:
        p = self.prefix
        k = facts.keys
        ids = {
            Scope.BUYER: k.buyer,
            Scope.INSTRUMENT: k.instrument,
            Scope.DEVICE: k.device,
            Scope.IP: k.ip,
            Scope.MERCHANT: facts.merchant,
        }
        pairs = {d: (o, m) for d, o, m in distinct_pairs(facts)}
        keys = [f"{p}h:{facts.ref}", f"{p}r:{facts.ref}"]
        keys += [f"{p}w:{s.value}:{ids[s] or '-'}" for s in _SCOPES]
        keys += [f"{p}d:{d.value}:{pairs[d][0] if d in pairs else '-'}" for d in _DISTINCT]
        keys += [f"{p}bd:{k.buyer}", f"{p}bp:{k.buyer}", f"{p}t:instrument", f"{p}t:device"]
        args: list[str | int] = [
            mode,
            _ms(facts.at),
            f"{facts.ref}|{facts.amount_units}",
            facts.amount_units,
            "".join("1" if ids[s] else "0" for s in _SCOPES),
            "".join("1" if d in pairs else "0" for d in _DISTINCT),
            *(pairs[d][1] if d in pairs else "" for d in _DISTINCT),
            k.device or "",
            k.instrument or "",
            facts.region or "",
        ]
        return keys, args

    def _call(self, mode: str, facts: SaleFacts) -> Any:
        keys, args = self._keys_args(mode, facts)
        try:
            return self._script(keys=keys, args=args)
        except redis.RedisError as e:
            raise StoreUnavailableError(
                f"the risk state in Redis is unavailable: {type(e).__name__}"
            ) from e

    def observe(self, facts: SaleFacts, *, hold: bool) -> Observation:
        out = self._call("hold" if hold else "read", facts)
        windows = {}
        for index, scope in enumerate(_SCOPES):
            values = [int(v) for v in out[1 + 6 * index : 7 + 6 * index]]
            windows[scope] = Window(*values)
        present = {d for d, _, _ in distinct_pairs(facts)}
        distinct = {d: int(out[31 + i]) for i, d in enumerate(_DISTINCT) if d in present}
        region = out[40]
        if isinstance(region, bytes):
            region = region.decode()
        return Observation(
            windows={s: w for s, w in windows.items() if _present(facts, s)},
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

    def record_many(self, sales: Sequence[SaleFacts]) -> None:
        """Record sales one script call each, sent in pipelines of 500 (one round trip)."""
        for start in range(0, len(sales), 500):
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for facts in sales[start : start + 500]:
                        keys, args = self._keys_args("record", facts)
                        self._script(keys=keys, args=args, client=pipe)
                    pipe.execute()
            except redis.RedisError as e:
                raise StoreUnavailableError(
                    f"the risk state in Redis is unavailable: {type(e).__name__}"
                ) from e

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
