#!/usr/bin/env python3
"""Reconciliation with pandas: the comparison figure for billclear's matcher.

    python3 ops/bench/recon_pandas.py DIR
    python3 ops/bench/recon_pandas.py --generate N DIR [--seed S]
    python3 ops/bench/recon_pandas.py --self-test

DIR holds:
  payments.csv      our side: our_reference,biller_reference,account_number,
                    amount,currency,status (CONFIRMED, SETTLED, RETURNED,
                    UNKNOWN, REJECTED); amount like 12.34
  confirmation.csv  the water confirmation: our_reference,biller_reference,
                    biller_id,account_number,amount,currency,credited_at;
                    last line TRAILER,<count>,<total>

Every reference is classified once (first rule that applies, in this order):
  duplicate_at_biller  their rows >= 2
  missing_at_biller    ours CONFIRMED/SETTLED/RETURNED, no row of theirs
  missing_at_us        a row of theirs, ours missing or REJECTED
  agreed_not_applied   ours REJECTED, no row of theirs (both say nothing moved)
  auto_confirm         ours UNKNOWN, one row of theirs, same amount and currency
  auto_reject          ours UNKNOWN, no row of theirs (grace elapsed)
  amount_mismatch      ours and one row of theirs, amounts (or currencies) differ
  reference_mismatch   ours and one row of theirs, both biller references
                       non-empty and different
  matched              everything else

These are billclear's rules (`domain::recon::matching::judge`) for one
biller's water file of the date, as `billclear bench recon` runs them: the
file covers the connector every payment went through (absence proves
something), the grace period is over, the tolerance is 0, and every row is
a credit (the water file has no failed rows).

Amounts are compared as integer minor units, parsed from the text without
floats. Prints the count per category, the time (total, and the part spent
in read_csv) and the peak memory (VmHWM of this process; getrusage maxrss
where there is no /proc).

--generate writes both files for N payments with a fixed seed, with about
0.5% of each break type and 1% UNKNOWN payments, and prints the counts the
classification must give.
"""

import argparse
import os
import random
import resource
import sys
import time
import uuid

CATEGORIES = [
    "matched",
    "auto_confirm",
    "auto_reject",
    "missing_at_biller",
    "missing_at_us",
    "duplicate_at_biller",
    "amount_mismatch",
    "reference_mismatch",
    "agreed_not_applied",
]

# Currencies with 2 decimal places (ISO 4217) that the files may carry.
SCALE_2 = {"CNY", "HKD", "USD", "EUR", "GBP", "SGD"}

OURS_COLUMNS = ["our_reference", "biller_reference", "account_number", "amount", "currency", "status"]
THEIRS_COLUMNS = [
    "our_reference",
    "biller_reference",
    "biller_id",
    "account_number",
    "amount",
    "currency",
    "credited_at",
]
STATUSES = {"CONFIRMED", "SETTLED", "RETURNED", "UNKNOWN", "REJECTED"}
# Held as paid: absent from their file, missing at the biller.
PAID = ["CONFIRMED", "SETTLED", "RETURNED"]


def fail(message):
    print(f"recon_pandas: {message}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------
# Matching


def to_minor(pd, amounts, what):
    """Decimal strings ("12.34", "-0.5", "7") to int64 minor units (scale 2),
    with string operations and integer arithmetic only."""
    valid = amounts.str.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,2})?")
    if not valid.all():
        bad = amounts[~valid.astype(bool)].iloc[0]
        fail(f"{what}: amount {bad!r} is not a decimal with at most 2 places")
    negative = amounts.str.startswith("-")
    parts = amounts.str.lstrip("-").str.partition(".")
    units = parts[0].astype("int64")
    cents = parts[2].str.ljust(2, "0").astype("int64")
    minor = units * 100 + cents
    return minor.where(~negative, -minor).astype("int64")


def read_csv(pd, path, columns):
    if not os.path.exists(path):
        fail(f"{path} is missing")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    if list(frame.columns) != columns:
        fail(f"{path}: header is {list(frame.columns)}, expected {columns}")
    return frame


def reconcile(directory):
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    ours = read_csv(pd, os.path.join(directory, "payments.csv"), OURS_COLUMNS)
    theirs = read_csv(pd, os.path.join(directory, "confirmation.csv"), THEIRS_COLUMNS)
    read_done = time.perf_counter()

    # The trailer: last line, TRAILER,<count>,<total> (the short line is
    # padded with empty fields by read_csv). Checked, then dropped.
    if len(theirs) == 0 or theirs["our_reference"].iloc[-1] != "TRAILER":
        fail("confirmation.csv: the last line is not TRAILER,<count>,<total>")
    trailer = theirs.iloc[-1]
    theirs = theirs.iloc[:-1]
    if (theirs["our_reference"] == "TRAILER").any():
        fail("confirmation.csv: TRAILER before the last line")

    for name, frame in (("payments.csv", ours), ("confirmation.csv", theirs)):
        unknown = set(frame["currency"].unique()) - SCALE_2
        if unknown:
            fail(f"{name}: currency {sorted(unknown)} is not one with 2 decimals")
    bad_status = set(ours["status"].unique()) - STATUSES
    if bad_status:
        fail(f"payments.csv: unknown status {sorted(bad_status)}")
    if ours["our_reference"].duplicated().any():
        fail("payments.csv: an our_reference appears twice")

    ours_minor = to_minor(pd, ours["amount"], "payments.csv")
    their_minor = to_minor(pd, theirs["amount"], "confirmation.csv")
    trailer_count = trailer["biller_reference"]
    trailer_total = pd.Series([trailer["biller_id"]], dtype=str)
    if not trailer_count.isdigit() or int(trailer_count) != len(theirs):
        fail(f"confirmation.csv: trailer count {trailer_count!r}, {len(theirs)} rows")
    if int(to_minor(pd, trailer_total, "trailer").iloc[0]) != int(their_minor.sum()):
        fail(f"confirmation.csv: trailer total {trailer_total.iloc[0]!r} is not the sum")
    parsed = time.perf_counter()

    # Their rows per reference: how many, and the amount and reference of
    # the first (meaningful when there is exactly one).
    grouped = (
        pd.DataFrame(
            {
                "our_reference": theirs["our_reference"].to_numpy(),
                "their_minor": their_minor.to_numpy(),
                "their_ref": theirs["biller_reference"].to_numpy(),
                "their_currency": theirs["currency"].to_numpy(),
            }
        )
        .groupby("our_reference", sort=False)
        .agg(
            count=("their_minor", "size"),
            their_minor=("their_minor", "first"),
            their_ref=("their_ref", "first"),
            their_currency=("their_currency", "first"),
        )
        .reset_index()
    )
    left = pd.DataFrame(
        {
            "our_reference": ours["our_reference"].to_numpy(),
            "status": ours["status"].to_numpy(),
            "our_minor": ours_minor.to_numpy(),
            "our_ref": ours["biller_reference"].to_numpy(),
            "our_currency": ours["currency"].to_numpy(),
            "ours": True,
        }
    )
    both = left.merge(grouped, on="our_reference", how="outer", sort=False)

    count = both["count"].fillna(0).astype("int64")
    has_ours = both["ours"].fillna(False).astype(bool)
    status = both["status"].fillna("")
    our_ref = both["our_ref"].fillna("")
    their_ref = both["their_ref"].fillna("")
    our_minor = both["our_minor"].fillna(0).astype("int64")
    their_amt = both["their_minor"].fillna(0).astype("int64")
    same_amount = (our_minor == their_amt) & (both["our_currency"].fillna("") == both["their_currency"].fillna(""))
    one = count == 1

    conditions = [
        count >= 2,
        has_ours & status.isin(PAID) & (count == 0),
        (count >= 1) & (~has_ours | (status == "REJECTED")),
        has_ours & (status == "REJECTED") & (count == 0),
        has_ours & (status == "UNKNOWN") & one & same_amount,
        has_ours & (status == "UNKNOWN") & (count == 0),
        has_ours & one & ~same_amount,
        has_ours & one & (our_ref != "") & (their_ref != "") & (our_ref != their_ref),
    ]
    choices = [
        "duplicate_at_biller",
        "missing_at_biller",
        "missing_at_us",
        "agreed_not_applied",
        "auto_confirm",
        "auto_reject",
        "amount_mismatch",
        "reference_mismatch",
    ]
    category = np.select([c.to_numpy() for c in conditions], choices, default="matched")
    counts = pd.Series(category).value_counts()
    done = time.perf_counter()

    for name in CATEGORIES:
        print(f"{name:<20} {int(counts.get(name, 0)):>9}")
    print(f"references           {len(both):>9}")
    total = done - started
    print(f"pandas matching: {total:.3f} s (read {read_done - started:.3f} s)")
    print(
        f"  parse amounts + trailer check {parsed - read_done:.3f} s, "
        f"group + merge + classify {done - parsed:.3f} s; "
        f"{len(ours)} payments, {len(theirs)} confirmation rows; pandas {pd.__version__}"
    )
    kib, source = peak_memory_kib()
    print(f"peak memory: {kib / 1024:.1f} MiB ({source})")
    return {name: int(counts.get(name, 0)) for name in CATEGORIES}


def peak_memory_kib():
    """This process's peak resident memory in KiB, and where it was read.

    VmHWM, not getrusage's maxrss: Linux carries the high-water mark of the
    address space a process had before exec (its parent's, when started by
    `billclear bench recon` after its setup) into ru_maxrss.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "maxrss"  # KiB on Linux


# --------------------------------------------------------------------------
# Generator


def money(minor):
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def generate(n, directory, seed):
    """Writes payments.csv and confirmation.csv for n payments (plus the
    missing_at_us references that exist only on their side) and returns the
    expected count per category."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    expected = dict.fromkeys(CATEGORIES, 0)
    ours_rows = []
    their_rows = []
    receipt = 0

    def reference():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def credited_at():
        s = rng.randrange(86_400)
        return f"2026-11-29T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+08:00"

    def theirs(ref, biller_ref, account, minor):
        their_rows.append(f"{ref},{biller_ref},sh-water,{account},{money(minor)},CNY,{credited_at()}")

    for _ in range(n):
        receipt += 1
        ref = reference()
        biller_ref = f"WR{receipt:010d}"
        account = f"{rng.randrange(10**10):010d}"
        minor = rng.randrange(100, 100_000)  # 1.00 .. 999.99
        u = rng.random()
        if u < 0.005:  # paid, never credited
            category, status = "missing_at_biller", rng.choice(["CONFIRMED", "SETTLED"])
        elif u < 0.010:  # credited, but we have no payment or rejected it
            category, status = "missing_at_us", "REJECTED"
            if rng.random() < 0.5:
                status = None
            theirs(ref, biller_ref, account, minor)
        elif u < 0.015:  # credited twice
            category, status = "duplicate_at_biller", "CONFIRMED"
            theirs(ref, biller_ref, account, minor)
            theirs(ref, f"WR{receipt:010d}D", account, minor)
        elif u < 0.020:
            category, status = "amount_mismatch", rng.choice(["CONFIRMED", "SETTLED"])
            theirs(ref, biller_ref, account, minor + rng.choice([-100, -1, 1, 5]))
        elif u < 0.025:
            category, status = "reference_mismatch", "CONFIRMED"
            theirs(ref, f"WR{receipt + 5_000_000_000:010d}", account, minor)
        elif u < 0.030:  # outcome unknown to us; the file says credited
            category, status = "auto_confirm", "UNKNOWN"
            theirs(ref, biller_ref, account, minor)
        elif u < 0.035:  # outcome unknown; not in the file
            category, status = "auto_reject", "UNKNOWN"
        elif u < 0.038:  # rejected and not credited: both agree nothing moved
            category, status = "agreed_not_applied", "REJECTED"
        else:
            category, status = "matched", rng.choice(["CONFIRMED", "SETTLED"])
            theirs(ref, biller_ref, account, minor)
        expected[category] += 1
        if status is not None:
            # We hold no biller reference for a payment whose outcome we
            # do not know, nor for a rejected one.
            ours_ref = "" if status in ("UNKNOWN", "REJECTED") else biller_ref
            ours_rows.append(f"{ref},{ours_ref},{account},{money(minor)},CNY,{status}")

    rng.shuffle(their_rows)  # their file is in their order, not ours
    total = sum(int(row.rsplit(",", 3)[1].replace(".", "")) for row in their_rows)
    with open(os.path.join(directory, "payments.csv"), "w", newline="") as f:
        f.write(",".join(OURS_COLUMNS) + "\n")
        f.write("\n".join(ours_rows) + ("\n" if ours_rows else ""))
    with open(os.path.join(directory, "confirmation.csv"), "w", newline="") as f:
        f.write(",".join(THEIRS_COLUMNS) + "\n")
        f.write("\n".join(their_rows) + ("\n" if their_rows else ""))
        f.write(f"TRAILER,{len(their_rows)},{money(total)}\n")
    return expected


# --------------------------------------------------------------------------
# Self-test: a hand-checked case (one reference per rule and precedence)
# and a generated day whose expected counts the generator knows.

HAND_PAYMENTS = """our_reference,biller_reference,account_number,amount,currency,status
a-matched,WR1,001,12.30,CNY,CONFIRMED
b-matched-short,WR2,002,12.3,CNY,SETTLED
c-mab,WR3,003,5.00,CNY,CONFIRMED
d-rejected-absent,,004,1.00,CNY,REJECTED
e-rejected-credited,,005,1.00,CNY,REJECTED
f-unk-confirm,,006,7.07,CNY,UNKNOWN
g-unk-reject,,007,7.07,CNY,UNKNOWN
h-unk-amount,,008,7.07,CNY,UNKNOWN
i-amount,WR9,009,100.00,CNY,CONFIRMED
j-ref,WR10,010,3.00,CNY,CONFIRMED
k-ref-empty-theirs,WR11,011,3.00,CNY,CONFIRMED
l-dup,WR12,012,3.00,CNY,CONFIRMED
m-unk-ref-differs,WRX,013,2.00,CNY,UNKNOWN
p-returned-absent,WR17,017,4.00,CNY,RETURNED
q-currency,WR18,018,5.00,CNY,CONFIRMED
"""

HAND_CONFIRMATION = """our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at
a-matched,WR1,sh-water,001,12.3,CNY,2026-11-29T10:00:00+08:00
b-matched-short,WR2,sh-water,002,12.30,CNY,2026-11-29T10:00:00+08:00
e-rejected-credited,WR5,sh-water,005,1.00,CNY,2026-11-29T10:00:00+08:00
f-unk-confirm,WR6,sh-water,006,7.07,CNY,2026-11-29T10:00:00+08:00
h-unk-amount,WR8,sh-water,008,7.70,CNY,2026-11-29T10:00:00+08:00
i-amount,WR9,sh-water,009,100.01,CNY,2026-11-29T10:00:00+08:00
j-ref,WR10B,sh-water,010,3.00,CNY,2026-11-29T10:00:00+08:00
k-ref-empty-theirs,,sh-water,011,3.00,CNY,2026-11-29T10:00:00+08:00
l-dup,WR12,sh-water,012,3.00,CNY,2026-11-29T10:00:00+08:00
l-dup,WR12,sh-water,012,3.00,CNY,2026-11-29T10:00:00+08:00
n-dup-not-ours,WR14,sh-water,014,1.00,CNY,2026-11-29T10:00:00+08:00
n-dup-not-ours,WR15,sh-water,014,1.00,CNY,2026-11-29T10:00:00+08:00
o-not-ours,WR16,sh-water,016,0.01,CNY,2026-11-29T10:00:00+08:00
m-unk-ref-differs,WRY,sh-water,013,2.00,CNY,2026-11-29T10:00:00+08:00
q-currency,WR18,sh-water,018,5.00,HKD,2026-11-29T10:00:00+08:00
TRAILER,15,161.39
"""

# a b k matched (12.3 == 12.30; their reference empty); d (REJECTED and
# absent) agreed_not_applied; f m auto_confirm (m: references differ, amounts equal); g
# auto_reject; c p (RETURNED) missing_at_biller; e (REJECTED) o (not ours) missing_at_us;
# l n duplicate_at_biller (n: not ours either); h (UNKNOWN) i q (same
# amount, other currency) amount_mismatch; j reference_mismatch.
HAND_EXPECTED = {
    "matched": 3,
    "auto_confirm": 2,
    "auto_reject": 1,
    "missing_at_biller": 2,
    "missing_at_us": 2,
    "duplicate_at_biller": 2,
    "amount_mismatch": 3,
    "reference_mismatch": 1,
    "agreed_not_applied": 1,
}


def self_test():
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "payments.csv"), "w") as f:
            f.write(HAND_PAYMENTS)
        with open(os.path.join(directory, "confirmation.csv"), "w") as f:
            f.write(HAND_CONFIRMATION)
        got = reconcile(directory)
        assert got == HAND_EXPECTED, f"hand case: {got} != {HAND_EXPECTED}"
    with tempfile.TemporaryDirectory() as directory:
        expected = generate(20_000, directory, 6)
        got = reconcile(directory)
        assert got == expected, f"generated day: {got} != {expected}"
        assert all(expected[name] > 0 for name in CATEGORIES), expected
    print("self-test: 2 passed, 0 failed")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generate", type=int, metavar="N", help="write N payments' files into DIR")
    parser.add_argument("--seed", type=int, default=6, help="generator seed (default 6)")
    parser.add_argument("--self-test", action="store_true", help="check the rules on known cases")
    parser.add_argument("dir", metavar="DIR", nargs="?")
    args = parser.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if args.dir is None:
        parser.error("DIR is required")
    if args.generate is not None:
        if args.generate < 0:
            fail("--generate needs N >= 0")
        expected = generate(args.generate, args.dir, args.seed)
        print(f"wrote {args.dir}/payments.csv and confirmation.csv; expected:")
        for name in CATEGORIES:
            print(f"{name:<20} {expected[name]:>9}")
        return 0
    reconcile(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
