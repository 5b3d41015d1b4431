//! The fuzz harness: a seeded mutation loop over one parser.
//!
//! Every case is drawn from its own generator, seeded by the run's seed,
//! the parser's name and the case number, so any one case can be replayed
//! alone (`BILLCLEAR_FUZZ_ONLY=<parser> BILLCLEAR_FUZZ_CASE=<n>`) with the
//! same bytes, on any machine, whatever ran before it. The generator is a
//! SplitMix64 written here, not a library's, so a seed means the same
//! inputs for as long as this file does not change.
//!
//! A run is made of:
//!
//! 1. the `must_refuse` inputs of the parser (such as a camt.053 without
//!    its `<Stmt>` start tag), which must be refused, not read;
//! 2. on even case numbers, sweeps over each seed until they run out: the
//!    seed as it is, then every XML start and end tag removed in turn,
//!    every line removed and repeated in turn, the file cut after every
//!    line and in the middle of it;
//! 3. on the other case numbers, random cases: a seed mutated 1 to 16 times (bit flips, odd bytes,
//!    insertions, deletions, cut tails and heads, repeated chunks, chunks
//!    of other seeds, odd tokens such as NUL, huge numbers, `-0`, `1e9`,
//!    unicode and CRLF, numbers and fields replaced, tags removed, lines
//!    removed, repeated or swapped, line ends changed, two seeds spliced),
//!    or bytes made from nothing (random bytes, random tokens).
//!
//! Each case calls the parser inside `catch_unwind`: a panic is counted
//! (with its message, place and first case) instead of ending the run, so
//! one run tells every panic there is. A refusal must say where and why
//! (a refusal with an empty location or reason is counted as unclear).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Cases per parser when `BILLCLEAR_FUZZ_CASES` is not set: a quick run
/// within `cargo test --workspace`. `ops/test.sh` runs 10,000.
pub const DEFAULT_CASES: u64 = 300;

/// The run's seed when `BILLCLEAR_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x0B11_C1EA_0020_2026;

/// The largest input a mutation may grow (bytes).
const MAX_INPUT: usize = 256 * 1024;

/// What a parser made of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read (and, for bank files, checked) whole.
    Read,
    /// Refused, saying where and why (the refusal as shown).
    Refused(String),
    /// Refused without saying where or why.
    Unclear(String),
}

/// A refusal, checked to say where and why.
pub fn refusal(location: &str, reason: &str) -> Verdict {
    if location.trim().is_empty() || reason.trim().is_empty() {
        Verdict::Unclear(format!("location {location:?}, reason {reason:?}"))
    } else {
        Verdict::Refused(format!("{location}: {reason}"))
    }
}

/// A refusal that is one message (codec errors name their field inside).
pub fn refusal_text(text: &str) -> Verdict {
    if text.trim().is_empty() {
        Verdict::Unclear("an empty message".into())
    } else {
        Verdict::Refused(text.to_string())
    }
}

/// A parser as the harness calls it.
pub type Parse = Box<dyn Fn(&[u8]) -> Verdict>;

/// One parser under test.
pub struct Target {
    /// The name in the summary line and in `BILLCLEAR_FUZZ_ONLY`.
    pub name: &'static str,
    /// Valid inputs to mutate.
    pub seeds: Vec<Vec<u8>>,
    /// Tokens of the format (tags, field names, record types) to insert.
    pub dictionary: Vec<Vec<u8>>,
    /// Inputs that must be refused, run first, with what they are.
    pub must_refuse: Vec<(&'static str, Vec<u8>)>,
    /// The parser, as the service calls it on outside bytes.
    pub parse: Parse,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Summary {
    pub cases: u64,
    pub panics: u64,
    pub refused: u64,
    pub read: u64,
    pub unclear: u64,
    /// Distinct panics (message and place): how many cases, the first case.
    pub distinct: BTreeMap<String, (u64, u64)>,
    /// Unclear refusals: the first few, with their case.
    pub unclear_cases: Vec<(u64, String)>,
    /// `must_refuse` inputs that were read or panicked.
    pub not_refused: Vec<String>,
    pub slowest: Duration,
    pub slowest_case: u64,
    pub elapsed: Duration,
}

// ------------------------------------------------------------ settings

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Cases per parser: `BILLCLEAR_FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u64 {
    env_u64("BILLCLEAR_FUZZ_CASES").unwrap_or(DEFAULT_CASES)
}

/// The run's seed: `BILLCLEAR_FUZZ_SEED` (decimal or 0x hex), else
/// [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    env_u64("BILLCLEAR_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

// ------------------------------------------------------------ randomness

/// SplitMix64: small, fast, and the same numbers forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A range within 0..len, at most `max` long (at least 1 when len > 0).
    fn span(&mut self, len: usize, max: usize) -> (usize, usize) {
        if len == 0 {
            return (0, 0);
        }
        let start = self.below(len);
        let n = 1 + self.below(max.min(len - start).max(1));
        (start, (start + n).min(len))
    }
}

/// FNV-1a of a name, to give each parser its own stream.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The generator of case `case` of parser `name` in run `seed`.
pub fn case_rng(seed: u64, name: &str, case: u64) -> Rng {
    let mut mix = Rng::new(seed ^ name_hash(name));
    let base = mix.next();
    let mut r = Rng::new(base ^ case.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    r.next();
    r
}

// ------------------------------------------------------------- tokens

/// Tokens that break parsers: NUL and control bytes, numbers too large,
/// negative zero, exponents, unicode, line ends, XML oddities, bytes that
/// are not UTF-8.
pub const ODD_TOKENS: &[&[u8]] = &[
    b"\0",
    b"\0\0\0\0",
    b"\x7f",
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xf0\x9f\x92",
    b"\xef\xbb\xbf",
    b"\xed\xa0\x80",
    b"-0",
    b"-0.00",
    b"+1",
    b"-1",
    b"0",
    b"00",
    b"0.000",
    b".5",
    b"5.",
    b"1e9",
    b"1E-9",
    b"NaN",
    b"inf",
    b"-inf",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"99999999999999999999",
    b"999999999999999999999999999999999999",
    b"79228162514264337593543950335",
    b"79228162514264337593543950336",
    b"7922816251426433759354395033.5",
    b"0.0000000000000000000000000001",
    b"0.00000000000000000000000000001",
    b"1,000.00",
    b"1.000,00",
    b"1 000",
    b"\xc2\xa0",
    "é".as_bytes(),
    "张伟".as_bytes(),
    "€".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{2028}".as_bytes(),
    "𝟙".as_bytes(),
    b"\r\n",
    b"\r",
    b"\n",
    b"\n\n",
    b"\t",
    b" ",
    b"\"",
    b"\"\"",
    b"'",
    b",",
    b";",
    b"|",
    b"||",
    b":",
    b"/",
    b"//",
    b"\\",
    b"%",
    b"%00",
    b"%zz",
    b"&",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x0;",
    b"&#xD800;",
    b"&#x110000;",
    b"&#99999999999;",
    b"&nosuch;",
    b"<",
    b">",
    b"</",
    b"/>",
    b"<a>",
    b"</a>",
    b"<![CDATA[x]]>",
    b"<![CDATA[",
    b"<!-- c -->",
    b"<!--",
    b"<?xml version=\"1.0\"?>",
    b"<?pi x?>",
    b"<!DOCTYPE d [<!ENTITY e \"x\">]>",
    b"xmlns=\"\"",
    b"xmlns:p=\"urn:x\"",
    b"p:",
    b"{",
    b"}",
    b"[",
    b"]",
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"1.5e308",
    b"-",
    b"-}",
    b"{4:",
    b"{1:",
    b":20:",
    b":61:",
    b":86:",
    b":60F:",
    b":62F:",
    b"T",
    b"Z",
    b"+08:00",
    b"+25:00",
    b"2026-02-30",
    b"2026-13-01",
    b"0000-00-00",
    b"9999-12-31T23:59:60Z",
    b"-262144-01-01",
    b"+262143-12-31",
    b"20261131",
    b"99999999999999",
    b"00000000000000",
];

/// Numbers to put where a number was.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-1",
    b"1e9",
    b"0.001",
    b"1.23456789",
    b"00000000000000000001",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"79228162514264337593543950335",
    b"99999999999999999999999999999999",
    b"1000000000000000.00",
    b"1000000000000001",
    b"4294967296",
    b"65536",
    b"256",
    b"999",
    b"1,5",
    b"",
    b" 1",
    b"\xd9\xa1",
];

const INTERESTING_BYTES: &[u8] = &[
    0, 0xff, 0x7f, 0x80, 0xc0, 0xe2, b'<', b'>', b'/', b'&', b'"', b'\'', b'\n', b'\r', b'\t',
    b' ', b':', b',', b'|', b'-', b'.', b'0', b'9', b'{', b'}', b'A', b'z',
];

// ------------------------------------------------------------ mutations

fn xml_tags(input: &[u8]) -> Vec<(usize, usize)> {
    let mut tags = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'<' {
            if let Some(end) = input[i..].iter().position(|&b| b == b'>') {
                tags.push((i, i + end + 1));
                i += end + 1;
                continue;
            }
        }
        i += 1;
    }
    tags
}

/// Byte ranges of the lines (with their line end).
fn lines(input: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < input.len() {
        out.push((start, input.len()));
    }
    out
}

fn insert(input: &mut Vec<u8>, at: usize, what: &[u8]) {
    let at = at.min(input.len());
    input.splice(at..at, what.iter().copied());
}

fn chunk_of<'a>(rng: &mut Rng, seeds: &'a [Vec<u8>]) -> &'a [u8] {
    let s = rng.pick(seeds);
    let (a, b) = rng.span(s.len(), 64);
    &s[a..b]
}

/// One mutation of `input`.
fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, t: &Target) {
    let len = input.len();
    match rng.below(20) {
        // A bit flipped.
        0 | 1 => {
            if len > 0 {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
        }
        // A byte set to one that matters.
        2 => {
            if len > 0 {
                let i = rng.below(len);
                input[i] = *rng.pick(INTERESTING_BYTES);
            }
        }
        // Random bytes inserted.
        3 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let at = rng.below(len + 1);
            insert(input, at, &bytes);
        }
        // A range deleted.
        4 => {
            let (a, b) = rng.span(len, 1 + len / 4);
            input.drain(a..b);
        }
        // The tail cut off.
        5 => {
            let at = rng.below(len + 1);
            input.truncate(at);
        }
        // The head cut off.
        6 => {
            let at = rng.below(len + 1);
            input.drain(..at);
        }
        // A chunk repeated in place.
        7 => {
            let (a, b) = rng.span(len, 256);
            let chunk = input[a..b].to_vec();
            for _ in 0..1 + rng.below(3) {
                insert(input, b, &chunk);
            }
        }
        // A chunk of some seed inserted, or written over.
        8 => {
            let chunk = chunk_of(rng, &t.seeds).to_vec();
            let at = rng.below(len + 1);
            if rng.chance(50) {
                insert(input, at, &chunk);
            } else {
                let end = (at + chunk.len()).min(len);
                input.splice(at..end, chunk);
            }
        }
        // An odd token inserted.
        9 | 10 => {
            let token = *rng.pick(ODD_TOKENS);
            let at = rng.below(len + 1);
            insert(input, at, token);
        }
        // A token of the format inserted.
        11 => {
            if !t.dictionary.is_empty() {
                let token = rng.pick(&t.dictionary).clone();
                let at = rng.below(len + 1);
                insert(input, at, &token);
            }
        }
        // A number replaced.
        12 => {
            let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let mut a = *rng.pick(&digits);
                while a > 0
                    && (input[a - 1].is_ascii_digit() || matches!(input[a - 1], b'.' | b','))
                {
                    a -= 1;
                }
                let mut b = a;
                while b < len && (input[b].is_ascii_digit() || matches!(input[b], b'.' | b',')) {
                    b += 1;
                }
                let with = *rng.pick(NUMBERS);
                input.splice(a..b, with.iter().copied());
            }
        }
        // A field (between separators) replaced by a token.
        13 => {
            if len > 0 {
                let sep = |b: u8| matches!(b, b',' | b'|' | b'\n' | b'>' | b'<' | b'"' | b':');
                let mid = rng.below(len);
                let mut a = mid;
                while a > 0 && !sep(input[a - 1]) {
                    a -= 1;
                }
                let mut b = mid;
                while b < len && !sep(input[b]) {
                    b += 1;
                }
                let with: Vec<u8> = if rng.chance(50) {
                    rng.pick(ODD_TOKENS).to_vec()
                } else {
                    chunk_of(rng, &t.seeds).to_vec()
                };
                input.splice(a..b, with);
            }
        }
        // An XML start or end tag removed.
        14 => {
            let tags = xml_tags(input);
            if !tags.is_empty() {
                let (a, b) = *rng.pick(&tags);
                input.drain(a..b);
            }
        }
        // An XML tag repeated, or moved.
        15 => {
            let tags = xml_tags(input);
            if !tags.is_empty() {
                let (a, b) = *rng.pick(&tags);
                let tag = input[a..b].to_vec();
                if rng.chance(50) {
                    input.drain(a..b);
                }
                let at = rng.below(input.len() + 1);
                insert(input, at, &tag);
            }
        }
        // A line removed, repeated or swapped with another.
        16 => {
            let ls = lines(input);
            if !ls.is_empty() {
                let (a, b) = *rng.pick(&ls);
                match rng.below(3) {
                    0 => {
                        input.drain(a..b);
                    }
                    1 => {
                        let line = input[a..b].to_vec();
                        insert(input, b, &line);
                    }
                    _ => {
                        let (c, d) = *rng.pick(&ls);
                        if d <= a || b <= c {
                            let (first, second) = if b <= c {
                                ((a, b), (c, d))
                            } else {
                                ((c, d), (a, b))
                            };
                            let mut out = input[..first.0].to_vec();
                            out.extend_from_slice(&input[second.0..second.1]);
                            out.extend_from_slice(&input[first.1..second.0]);
                            out.extend_from_slice(&input[first.0..first.1]);
                            out.extend_from_slice(&input[second.1..]);
                            *input = out;
                        }
                    }
                }
            }
        }
        // Line ends changed.
        17 => {
            let mut out = Vec::with_capacity(len + len / 16);
            let mode = rng.below(3);
            for (i, &b) in input.iter().enumerate() {
                match (mode, b) {
                    (0, b'\n') if i == 0 || input[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
                    (1, b'\r') => {}
                    (2, b'\n') => out.push(b'\r'),
                    _ => out.push(b),
                }
            }
            *input = out;
        }
        // Spliced with another seed.
        18 => {
            let other = rng.pick(&t.seeds);
            let at = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        // Emptied, or left as white space.
        _ => {
            if rng.chance(30) {
                input.clear();
                if rng.chance(50) {
                    let blank = *rng.pick::<&[u8]>(&[&b" "[..], b"\n", b"\r\n", b"\xef\xbb\xbf"]);
                    input.extend_from_slice(blank);
                }
            } else {
                // A case change of one letter.
                let letters: Vec<usize> = (0..len)
                    .filter(|&i| input[i].is_ascii_alphabetic())
                    .collect();
                if !letters.is_empty() {
                    let i = *rng.pick(&letters);
                    input[i] ^= 0x20;
                }
            }
        }
    }
    if input.len() > MAX_INPUT {
        input.truncate(MAX_INPUT);
    }
}

/// The input of a random case.
fn random_case(rng: &mut Rng, t: &Target) -> Vec<u8> {
    match rng.below(100) {
        // Bytes from nothing.
        0..=3 => {
            let n = rng.below(512);
            (0..n).map(|_| rng.next() as u8).collect()
        }
        // Tokens from nothing.
        4..=7 => {
            let mut out = Vec::new();
            for _ in 0..1 + rng.below(40) {
                match rng.below(3) {
                    0 => {
                        let token = *rng.pick(ODD_TOKENS);
                        out.extend_from_slice(token)
                    }
                    1 if !t.dictionary.is_empty() => {
                        let token: &Vec<u8> = rng.pick(&t.dictionary);
                        out.extend_from_slice(token)
                    }
                    _ => out.extend_from_slice(chunk_of(rng, &t.seeds)),
                }
            }
            out
        }
        // A seed mutated.
        _ => {
            let mut input = rng.pick(&t.seeds).clone();
            let n = if rng.chance(80) {
                1 + rng.below(4)
            } else {
                1 + rng.below(16)
            };
            for _ in 0..n {
                mutate_once(rng, &mut input, t);
            }
            input
        }
    }
}

/// The systematic cases: each seed as it is, each tag removed, each line
/// removed and repeated, the file cut at and inside each line.
fn sweeps(t: &Target) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for seed in &t.seeds {
        out.push(seed.clone());
        for (a, b) in xml_tags(seed) {
            let mut v = seed.clone();
            v.drain(a..b);
            out.push(v);
        }
        let ls = lines(seed);
        for &(a, b) in &ls {
            let mut removed = seed.clone();
            removed.drain(a..b);
            out.push(removed);
            let mut repeated = seed.clone();
            insert(&mut repeated, b, &seed[a..b]);
            out.push(repeated);
            out.push(seed[..b].to_vec());
            out.push(seed[..a + (b - a) / 2].to_vec());
        }
    }
    out
}

/// The input of case `case`: the even cases go through the sweeps in
/// order (then, like the odd ones, are random cases).
pub fn input_of(t: &Target, sweeps: &[Vec<u8>], seed: u64, case: u64) -> Vec<u8> {
    let sweep = case
        .is_multiple_of(2)
        .then(|| sweeps.get((case / 2) as usize))
        .flatten();
    match sweep {
        Some(input) => input.clone(),
        None => random_case(&mut case_rng(seed, t.name, case), t),
    }
}

// ------------------------------------------------------------- panics

thread_local! {
    /// While a case runs: the panic it raised, if any.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// A panic hook that records the panics of cases (message and place) and
/// leaves every other panic to the default hook.
fn install_hook() {
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".into());
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let recorded = CAUGHT.with(|c| match c.borrow_mut().as_mut() {
                Some(slot) => {
                    *slot = Some(format!("{message} (at {place})"));
                    true
                }
                None => false,
            });
            if !recorded {
                default(info);
            }
        }));
    });
}

/// Runs one input: its verdict, or the panic it raised.
fn run_one(t: &Target, input: &[u8]) -> Result<Verdict, String> {
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(|| (t.parse)(input)));
    let caught = CAUGHT.with(|c| c.borrow_mut().take().flatten());
    result.map_err(|_| caught.unwrap_or_else(|| "(a panic)".into()))
}

/// Bytes shown in a message: escaped, at most `max` of them.
pub fn show(input: &[u8], max: usize) -> String {
    let cut = &input[..input.len().min(max)];
    let mut s: String = cut.escape_ascii().to_string();
    if input.len() > max {
        s.push_str(&format!("… ({} bytes in all)", input.len()));
    }
    s
}

/// Runs `t`: its `must_refuse` inputs, then `cases()` cases. Prints the
/// summary line (and each distinct panic with how to replay it).
pub fn run(t: &Target) -> Summary {
    install_hook();
    let seed = seed();
    let cases = cases();
    let sweeps = sweeps(t);
    let mut s = Summary::default();
    let started = Instant::now();

    // Each kind of input that must be refused: how many, and the first
    // refusal, shown under the summary line.
    let mut refused_as_they_must: Vec<(&str, usize, String)> = Vec::new();
    for (what, input) in &t.must_refuse {
        match run_one(t, input) {
            Ok(Verdict::Refused(why)) => {
                match refused_as_they_must.iter_mut().find(|r| r.0 == *what) {
                    Some(r) => r.1 += 1,
                    None => refused_as_they_must.push((what, 1, why)),
                }
            }
            Ok(other) => s.not_refused.push(format!("{what}: {other:?}")),
            Err(panic) => s.not_refused.push(format!("{what}: panicked: {panic}")),
        }
    }

    let only_case = std::env::var("BILLCLEAR_FUZZ_CASE").ok().map(|v| {
        v.trim()
            .parse::<u64>()
            .expect("BILLCLEAR_FUZZ_CASE is a case number")
    });
    let range = match only_case {
        Some(c) => c..c + 1,
        None => 0..cases,
    };
    for case in range {
        let input = input_of(t, &sweeps, seed, case);
        if only_case.is_some() {
            println!(
                "fuzz {} case {case} (seed {seed:#x}), {} bytes: {}",
                t.name,
                input.len(),
                show(&input, 4096)
            );
        }
        let begun = Instant::now();
        let outcome = run_one(t, &input);
        let took = begun.elapsed();
        if only_case.is_some() {
            match &outcome {
                Ok(verdict) => println!("  -> {verdict:?}"),
                Err(panic) => println!("  -> PANIC: {panic}"),
            }
        }
        if took > s.slowest {
            s.slowest = took;
            s.slowest_case = case;
        }
        s.cases += 1;
        match outcome {
            Ok(Verdict::Read) => s.read += 1,
            Ok(Verdict::Refused(_)) => s.refused += 1,
            Ok(Verdict::Unclear(why)) => {
                s.unclear += 1;
                if s.unclear_cases.len() < 5 {
                    s.unclear_cases.push((case, why));
                }
            }
            Err(panic) => {
                s.panics += 1;
                let entry = s.distinct.entry(panic).or_insert((0, case));
                entry.0 += 1;
                if entry.0 == 1 {
                    save_failure(t.name, case, &input);
                }
            }
        }
    }
    s.elapsed = started.elapsed();

    let mut report = format!(
        "fuzz {}: {} cases, {} panics, {} refused, {} read (seed {seed:#x}, {:.1} s, slowest case {} in {} ms)\n",
        t.name,
        s.cases,
        s.panics,
        s.refused,
        s.read,
        s.elapsed.as_secs_f64(),
        s.slowest_case,
        s.slowest.as_millis(),
    );
    for (what, n, why) in &refused_as_they_must {
        report.push_str(&format!(
            "  refused as it must: {what} ({n} input(s)), first: {}\n",
            short(why, 160)
        ));
    }
    for (panic, (n, first)) in &s.distinct {
        let input = input_of(t, &sweeps, seed, *first);
        report.push_str(&format!(
            "  PANIC in {n} case(s), first case {first}: {panic}\n    input: {}\n    replay: BILLCLEAR_FUZZ_SEED={seed:#x} BILLCLEAR_FUZZ_ONLY={} BILLCLEAR_FUZZ_CASE={first} cargo test -p billclear --test parsers_fuzz -- --nocapture\n",
            show(&input, 300),
            t.name
        ));
    }
    for (case, why) in &s.unclear_cases {
        report.push_str(&format!("  UNCLEAR refusal, case {case}: {why}\n"));
    }
    for what in &s.not_refused {
        report.push_str(&format!("  NOT REFUSED: {what}\n"));
    }
    print!("{report}");
    append_summary(&report);
    s
}

/// Appends a parser's report to the file `BILLCLEAR_FUZZ_SUMMARY` names,
/// when it names one (`ops/test.sh` prints that file: the tests' own
/// output interleaves when they run in parallel).
fn append_summary(report: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(path) = std::env::var("BILLCLEAR_FUZZ_SUMMARY") else {
        return;
    };
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Err(e) = file.and_then(|mut f| std::io::Write::write_all(&mut f, report.as_bytes())) {
        eprintln!("fuzz: cannot append to {path}: {e}");
    }
}

/// At most `max` characters of `text`.
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Keeps the input of a panic under the target directory's tmp, for
/// replaying it by hand.
fn save_failure(name: &str, case: u64, input: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("parsers_fuzz");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}-case-{case}.bin")), input);
    }
}

/// Whether this parser is to run (`BILLCLEAR_FUZZ_ONLY` names one, or a
/// comma-separated list).
pub fn selected(name: &str) -> bool {
    match std::env::var("BILLCLEAR_FUZZ_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

/// Runs `t` and fails the test on any panic, unclear refusal, or a
/// `must_refuse` input that was not refused.
pub fn check(t: Target) {
    if !selected(t.name) {
        return;
    }
    let s = run(&t);
    assert!(
        s.panics == 0 && s.unclear == 0 && s.not_refused.is_empty(),
        "fuzz {}: {} panics ({} distinct), {} unclear refusals, {} must-refuse inputs not refused (see above)",
        t.name,
        s.panics,
        s.distinct.len(),
        s.unclear,
        s.not_refused.len()
    );
}
