"""Real-time risk: the risk step's latency with Redis and 50 rules, and sustained
decisions per second with two worker processes against a bare Redis pipeline.

Setup (not measured): a Redis state under a fresh key prefix in ``--redis-url``'s
database (db 12 by default; only this run's keys are written, and they are deleted at
the end), warmed with ``--warm`` sales across a population of buyers, cards, devices,
IPs and merchants drawn with a fixed seed (a few buyers much busier than the rest, some
cards and devices shared). The rule set is the 10 shipped rules plus 40 generated ones
over other features: 50 active rules. An IP-to-region table of 10,000 ranges is loaded.

Measured:

* risk step, per sale, in one process whose setup objects are frozen out of the garbage
  collector's passes (``gc.freeze()``, as ``webapp/wsgi.py`` does once a server worker is
  booted): ``SaleContext.parse`` of the JSON-like context,
  then ``RiskEngine.assess(..., hold=ref)`` (one Lua script call that holds the sale
  and returns every feature, then 50 CEL rules). This is what verify-before-sale adds.
  ``record_sale`` (the second script call, after the sale) is reported beside it, and
  the same step on the in-memory store (no Redis: the Python share), and within it the
  50 rules alone, as the engine runs them and through CEL's runtime. Baselines in the
  same run: one Redis ``PING`` round trip (the step is also given as a ratio to it and
  as the difference), and Redis's own time per script call (``INFO commandstats``).
* sustained decisions per second: two worker processes for ``--seconds`` each, each
  decision being a full sale (parse, assess with hold, record). Baseline in the same
  run: two processes sending, per sale, the same reads and writes as the two script
  calls as plain pipelined commands (two round trips per sale), with no features
  computed and no rules run.

Targets: risk step p99 <= 2 ms; decisions/s >= 50 % of the bare pipeline's.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
import redis

from provenance.fingerprints import pseudonym
from provenance.risk import MemoryStore, RiskEngine, RuleSet, SaleContext
from provenance.risk.engine import evaluate
from provenance.risk.features import Scope
from provenance.risk.redis_store import _DISTINCT, _SCOPES, RedisStore
from provenance.risk.regions import CidrRegionTable, Network
from provenance.risk.rules import DEFAULT_RULES, RuleAction, RuleSpec
from provenance.risk.store import distinct_pairs

KEY = bytes(range(32))
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
FEATURE_RULES = [
    ("buyer.sum_1h > {n}.0 && sale.amount > 200.0", 2000),
    ("merchant.count_1m > {n}", 400),
    ('ip.distinct_buyers_24h >= {n} && sale.channel == "web"', 30),
    ("buyer.distinct_instruments_24h >= {n}", 8),
    ("device.sum_24h > {n}.0", 20000),
    ("instrument.sum_24h > {n}.0 && buyer.first_sale", 5000),
    ("buyer.amount_ratio > double({n}) && buyer.history_count > 5", 30),
    ('sale.region_mismatch && instrument.bin.startsWith("4") && sale.amount > {n}.0', 1000),
]


def fifty_rules() -> RuleSet:
    specs = list(DEFAULT_RULES)
    i = 0
    while len(specs) < 50:
        condition, base = FEATURE_RULES[i % len(FEATURE_RULES)]
        n = base + 7 * (i // len(FEATURE_RULES))
        specs.append(
            RuleSpec(
                f"bench-{i:02d}", 1, condition.format(n=n), RuleAction.REVIEW,
                f"bench-{i:02d}", "A benchmark rule.", "基准测试规则。",
            )
        )  # fmt: skip
        i += 1
    rules = RuleSet(specs)
    assert len(rules.rules) == 50
    return rules


def region_table() -> CidrRegionTable:
    import ipaddress

    ranges: list[tuple[Network, str]] = []
    for i in range(10_000):
        network = ipaddress.ip_network(f"{10 + i // 256}.{i % 256}.0.0/16")
        ranges.append((network, ["CN-GD", "CN-BJ", "CN-SH", "US-CA", "DE"][i % 5]))
    return CidrRegionTable(ranges)


class Population:
    """Who buys: a fixed-seed population, some buyers far busier than others."""

    def __init__(self, seed: int, buyers: int = 20_000) -> None:
        self.random = random.Random(seed)
        self.buyers = buyers

    def sale(self) -> dict[str, Any]:
        r = self.random
        b = (
            int(r.paretovariate(1.2)) % self.buyers
            if r.random() < 0.3
            else r.randrange(self.buyers)
        )
        card = f"card-{b}-{r.randrange(2)}" if r.random() > 0.02 else f"shared-{r.randrange(50)}"
        return {
            "buyer": pseudonym(KEY, "buyer", f"buyer-{b}"),
            "instrument": {
                "fingerprint": pseudonym(KEY, "instrument", card),
                "bin": r.choice(["622202", "411111", "524242"]),
                "last4": f"{r.randrange(10_000):04d}",
            },
            "device": f"device-{b % (self.buyers // 2)}",
            "ip": f"{10 + r.randrange(39)}.{r.randrange(256)}.{r.randrange(256)}.{b % 250 + 1}",
            "region": r.choice(["CN", "CN-GD", "US"]),
            "amount": f"{r.choice([10, 30, 50, 100, 200, 500, 1000])}.00",
            "channel": r.choice(["web", "app", "web", "pos"]),
        }

    def merchant(self) -> str:
        return f"shop-{self.random.randrange(20)}"


def make_engine(url: str, prefix: str) -> RiskEngine:
    store = RedisStore(redis.Redis.from_url(url), prefix=prefix)
    return RiskEngine(rules=fifty_rules(), store=store, key=KEY, regions=region_table())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def warm(engine: RiskEngine, sales: int) -> None:
    """Record ``sales`` sales, pipelined as the sale feed records them (not measured)."""
    population = Population(seed=1)
    store = engine.store
    assert isinstance(store, RedisStore)
    batch = []
    for i in range(sales):
        at = NOW - timedelta(seconds=(sales - i) * 2)
        context = SaleContext.parse(population.sale())
        batch.append(
            engine.facts(context, merchant=population.merchant(), now=at, ref=f"w{i:063x}")
        )
        if len(batch) == 500:
            store.record_many(batch)
            batch = []
    store.record_many(batch)


# Commands the benchmark itself sends beside the scripts (the baseline, the statistics).
_NOT_SCRIPT_COMMANDS = frozenset(
    {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_ping", "cmdstat_info", "cmdstat_script"}
)


def script_stats(client: redis.Redis) -> tuple[int, int, int]:
    """Redis's own count and microseconds of script calls so far, and the commands run
    inside them (``INFO commandstats`` counts a script's commands under their own names)."""
    stats = client.info("commandstats")
    script = stats.get("cmdstat_evalsha", {})
    inside = sum(int(v.get("calls", 0)) for k, v in stats.items() if k not in _NOT_SCRIPT_COMMANDS)
    return int(script.get("calls", 0)), int(script.get("usec", 0)), inside


def latency(engine: RiskEngine, url: str, samples: int) -> dict[str, list[float]]:
    population = Population(seed=2)
    client = redis.Redis.from_url(url)
    times: dict[str, list[float]] = {
        "ping": [], "step": [], "record": [], "memory": [], "rules": [], "cel": []
    }  # fmt: skip
    sales = [(population.sale(), population.merchant()) for _ in range(samples)]
    # What a server worker has done once booted (webapp/wsgi.py): what setup built stays
    # out of the collector's passes.
    gc.collect()
    gc.freeze()
    for i, (raw, merchant) in enumerate(sales):
        at = NOW + timedelta(milliseconds=20 * i)
        start = time.perf_counter()
        client.ping()
        times["ping"].append(time.perf_counter() - start)
        start = time.perf_counter()
        context = SaleContext.parse(raw)
        assessment = engine.assess(context, merchant=merchant, now=at, hold=f"l{i:063x}")
        times["step"].append(time.perf_counter() - start)
        start = time.perf_counter()
        if assessment.decision.value != "block":
            engine.record_sale(context, merchant=merchant, now=at, ref=f"l{i:063x}")
        times["record"].append(time.perf_counter() - start)
    # The same steps on the in-memory store (the Python share), in a loop of their own so
    # that its growing state does not burden the collector during the steps above.
    seen: list[dict[str, Any]] = []
    local = RiskEngine(rules=engine.rules, store=MemoryStore(), key=KEY, regions=engine.regions)
    for i, (raw, merchant) in enumerate(sales):
        at = NOW + timedelta(milliseconds=20 * i)
        start = time.perf_counter()
        judged = local.assess(SaleContext.parse(raw), merchant=merchant, now=at, hold=f"l{i:063x}")
        times["memory"].append(time.perf_counter() - start)
        seen.append(dict(judged.features))
    gc.unfreeze()
    # The 50 rules alone, on the features of the sales above: as the engine runs them, and
    # through CEL's runtime (the features handed over as CEL values, one call a rule).
    rules = engine.rules
    for features in seen:
        start = time.perf_counter()
        evaluate(rules, features)
        times["rules"].append(time.perf_counter() - start)
        start = time.perf_counter()
        variables = cel.Context({name: features[feature] for feature, name in rules.variables})
        for rule in rules.rules:
            rule.program.execute(variables)
        times["cel"].append(time.perf_counter() - start)
    return times


def bare_pipeline(
    client: redis.Redis,
    store: RedisStore,
    engine: RiskEngine,
    raw: dict[str, Any],
    merchant: str,
    at: datetime,
    ref: str,
) -> None:
    """The reads and writes of one sale's two script calls, as plain pipelined commands."""
    context = SaleContext.parse(raw)
    facts = engine.facts(context, merchant=merchant, now=at, ref=ref)
    p, k, now = store.prefix, facts.keys, int(at.timestamp() * 1000)
    member = f"{ref}|{facts.amount_units}"
    ids = {
        Scope.BUYER: k.buyer,
        Scope.INSTRUMENT: k.instrument,
        Scope.DEVICE: k.device,
        Scope.IP: k.ip,
        Scope.MERCHANT: merchant,
    }
    pairs = {d: (o, m) for d, o, m in distinct_pairs(facts)}
    state = bytes(96)  # a window's packed figures, as the script stores them
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(f"{p}h:{ref}", f"{p}r:{ref}")
        for scope in _SCOPES:
            key = f"{p}w:{scope.value}:{ids[scope]}"
            pipe.get(key + "~")
            # The look-up of the sales that left a window (the script does it only when
            # one has: at most once a sale per window, amortised; counted here always).
            pipe.zrangebyscore(key, f"({now - 86_400_000}", "+inf", start=0, num=8)
            pipe.zadd(key, {member: now})
            pipe.pexpire(key, 86_460_000)
            pipe.set(key + "~", state, px=86_460_000)
        for distinct in _DISTINCT:
            if distinct in pairs:
                owner, mine = pairs[distinct]
                key = f"{p}d:{distinct.value}:{owner}"
                pipe.zadd(key, {mine: now})
                pipe.pexpire(key, 86_460_000)
                pipe.zcount(key, f"({now - 86_400_000}", "+inf")
        pipe.set(f"{p}h:{ref}", "", px=90_000_000)
        pipe.hexists(f"{p}bd:{k.buyer}", k.device or "")
        pipe.hmget(f"{p}bp:{k.buyer}", ["n", "u", "max", "region"])
        pipe.sismember(f"{p}t:instrument", k.instrument or "")
        pipe.sismember(f"{p}t:device", k.device or "")
        pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(f"{p}r:{ref}")
        pipe.get(f"{p}h:{ref}")
        pipe.delete(f"{p}h:{ref}")
        pipe.set(f"{p}r:{ref}", "1", px=90_000_000)
        pipe.hmget(f"{p}bp:{k.buyer}", ["n", "u", "max"])
        pipe.hset(
            f"{p}bp:{k.buyer}",
            mapping={"n": 1, "u": facts.amount_units, "max": 1, "region": facts.region or ""},
        )
        pipe.pexpire(f"{p}bp:{k.buyer}", 180 * 86_400_000)
        pipe.hset(f"{p}bd:{k.buyer}", k.device or "", now)
        pipe.pexpire(f"{p}bd:{k.buyer}", 180 * 86_400_000)
        pipe.execute()


def worker(
    kind: str, url: str, prefix: str, seed: int, start_at: float, seconds: float, out: Any
) -> None:
    engine = make_engine(url, prefix)
    store = engine.store
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(url)
    population = Population(seed=seed)
    while time.time() < start_at:
        time.sleep(0.001)
    done = 0
    stop = start_at + seconds
    while time.time() < stop:
        raw, merchant = population.sale(), population.merchant()
        # One clock for both workers, as in production: elapsed wall time.
        at = NOW + timedelta(hours=1, minutes=seed // 100, seconds=time.time() - start_at)
        ref = f"{kind[0]}{seed:04d}{done:059x}"
        if kind == "engine":
            context = SaleContext.parse(raw)
            assessment = engine.assess(context, merchant=merchant, now=at, hold=ref)
            if assessment.decision.value != "block":
                engine.record_sale(context, merchant=merchant, now=at, ref=ref)
        else:
            bare_pipeline(client, store, engine, raw, merchant, at, ref)
        done += 1
    out.put(done / seconds)


def throughput(kind: str, url: str, prefix: str, seconds: float, round_: int) -> float:
    queue: Any = multiprocessing.get_context("fork").Queue()
    start_at = time.time() + 2.0
    processes = [
        multiprocessing.get_context("fork").Process(
            target=worker, args=(kind, url, prefix, 100 * round_ + w, start_at, seconds, queue)
        )
        for w in range(2)
    ]
    for process in processes:
        process.start()
    rates = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return float(sum(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--warm", type=int, default=50_000, help="sales recorded before measuring")
    parser.add_argument("--samples", type=int, default=20_000, help="risk steps timed")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput runs")
    args = parser.parse_args()

    prefix = f"cardtrace-bench:{uuid.uuid4().hex[:8]}:"
    engine = make_engine(args.redis_url, prefix)
    store = engine.store
    assert isinstance(store, RedisStore)
    info = store.client.info("server")
    print(f"Redis {info['redis_version']}, {os.cpu_count()} cores, 50 rules, prefix {prefix}")
    try:
        started = time.perf_counter()
        warm(engine, args.warm)
        print(f"warm-up: {args.warm} sales recorded in {time.perf_counter() - started:.1f} s")
        calls_before, usec_before, inside_before = script_stats(store.client)
        times = latency(engine, args.redis_url, args.samples)
        calls_after, usec_after, inside_after = script_stats(store.client)
        print("| figure | p50 | p90 | p99 | p99.9 |")
        print("|---|---|---|---|---|")
        for name, label in (
            ("ping", "baseline: Redis PING round trip"),
            ("step", "risk step: parse + assess with hold (1 script call, 50 rules)"),
            ("record", "record_sale after the sale (1 script call)"),
            ("memory", "the same risk step on the in-memory store (the Python share)"),
            ("rules", "of which the 50 rules, as the engine runs them"),
            ("cel", "the same 50 rules through CEL's runtime (for comparison)"),
        ):
            ms = [t * 1000 for t in times[name]]
            print(
                f"| {label} | {percentile(ms, 50):.3f} ms | {percentile(ms, 90):.3f} ms | "
                f"{percentile(ms, 99):.3f} ms | {percentile(ms, 99.9):.3f} ms |"
            )
        ping = sorted(times["ping"])
        step = sorted(times["step"])
        for p in (50, 99):
            print(
                f"risk step / PING at p{p}: {percentile(step, p) / percentile(ping, p):.1f}x; "
                f"risk step - PING: {(percentile(step, p) - percentile(ping, p)) * 1000:.3f} ms"
            )
        calls = calls_after - calls_before
        if calls:
            print(
                f"Redis server time per script call (assess and record, {calls} calls): "
                f"{(usec_after - usec_before) / calls:.1f} us, "
                f"{(inside_after - inside_before) / calls:.1f} Redis commands inside each"
            )
        engine_rates, bare_rates = [], []
        for round_ in range(args.rounds):
            bare_rates.append(
                throughput("bare", args.redis_url, prefix + "bare:", args.seconds, round_)
            )
            engine_rates.append(throughput("engine", args.redis_url, prefix, args.seconds, round_))
            print(
                f"round {round_ + 1}: engine {engine_rates[-1]:,.0f} sales/s, "
                f"bare pipeline {bare_rates[-1]:,.0f} sales/s"
            )
        engine_rate, bare_rate = statistics.median(engine_rates), statistics.median(bare_rates)
        print(
            f"sustained, two processes (median of {args.rounds}): engine {engine_rate:,.0f} "
            f"decisions/s, bare pipeline {bare_rate:,.0f}/s, ratio {engine_rate / bare_rate:.0%}"
        )
    finally:
        store.reset()
        RedisStore(store.client, prefix=prefix + "bare:").reset()


if __name__ == "__main__":
    main()
