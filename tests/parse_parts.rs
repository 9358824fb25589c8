//! `parse_id_parts`, the borrowed base-id parser: it must read exactly what the owned
//! `parse_id` reads (same parts, same errors), on every test vector and on random input.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;
use threadline::ids::IdComponents;
use threadline::{parse_id, parse_id_parts, IdGenerator, IdParts, ManualClock, SeededEntropy};

/// Every string anywhere in a JSON value.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out)
        }),
        _ => {}
    }
}

/// The plain reading `parse_id` has always had (two `rsplitn` passes and the
/// 13-digit tie-break), written independently of the byte-scanning parser.
fn plain(id: &str) -> Option<(&str, u64, u64, &str)> {
    fn digits(s: &str) -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    if id.len() > threadline::ids::MAX_ID_LEN {
        return None;
    }
    let mut it = id.rsplitn(4, '_');
    let a = (|| {
        let random = it.next()?;
        let counter = digits(it.next()?)?;
        let ts = digits(it.next()?)?;
        let prefix = it.next()?;
        let hex = random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (!prefix.is_empty() && !random.is_empty() && hex).then_some((prefix, ts, counter, random))
    })();
    let mut it = id.rsplitn(3, '_');
    let b = (|| {
        let counter = digits(it.next()?)?;
        let ts = digits(it.next()?)?;
        let prefix = it.next()?;
        (!prefix.is_empty()).then_some((prefix, ts, counter, ""))
    })();
    let plausible = |ms: u64| (1_000_000_000_000..10_000_000_000_000).contains(&ms);
    match (a, b) {
        (Some(a), Some(b)) if !plausible(a.1) && plausible(b.1) => Some(b),
        (a, b) => a.or(b),
    }
}

fn same_as_owned(id: &str) {
    let borrowed = parse_id_parts(id);
    assert_eq!(
        borrowed
            .as_ref()
            .ok()
            .map(|p| (p.prefix, p.timestamp_ms, p.counter, p.random)),
        plain(id),
        "{id:?}"
    );
    let owned = parse_id(id);
    assert_eq!(borrowed.map(IdComponents::from), owned, "{id:?}");
    if let Ok(c) = &owned {
        assert_eq!(parse_id_parts(id).unwrap(), c.as_parts(), "{id:?}");
    }
}

#[test]
fn agrees_with_parse_id_on_every_vector_string() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut checked = 0;
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut all = Vec::new();
        strings(&v, &mut all);
        for s in all {
            same_as_owned(s);
            checked += 1;
            parsed += usize::from(parse_id(s).is_ok());
        }
    }
    // The parse section of ids.json alone holds 16 ids, most of them valid.
    assert!(
        checked > 100 && parsed > 10,
        "{checked} strings, {parsed} parsed"
    );
}

#[test]
fn exact_parts() {
    let id = "session_web_user1234_1700000000000_42_deadbeef";
    assert_eq!(
        parse_id_parts(id).unwrap(),
        IdParts {
            prefix: "session_web_user1234",
            timestamp_ms: 1_700_000_000_000,
            counter: 42,
            random: "deadbeef",
            full_id: id,
        }
    );
    let p = parse_id_parts("req_1700000000000_7").unwrap();
    assert_eq!((p.prefix, p.counter, p.random), ("req", 7, ""));
    // Both readings parse; the one with a 13-digit timestamp wins, as in parse_id.
    let p = parse_id_parts("id_42_1700000000000_5").unwrap();
    assert_eq!(
        (p.prefix, p.timestamp_ms, p.counter),
        ("id_42", 1_700_000_000_000, 5)
    );
    let e = parse_id_parts("x_1_2_XYZ").unwrap_err();
    assert_eq!(e, parse_id("x_1_2_XYZ").unwrap_err());
    assert!(e.to_string().contains("x_1_2_XYZ"), "{e}");
    // The parts point into the id: nothing was copied.
    let p = parse_id_parts(id).unwrap();
    assert!(std::ptr::eq(p.full_id, id));
    assert_eq!(p.prefix.as_ptr(), id.as_ptr());
    // Serialised like the owned components.
    assert_eq!(
        serde_json::to_value(p).unwrap(),
        serde_json::to_value(parse_id(id).unwrap()).unwrap()
    );
}

proptest! {
    #[test]
    fn agrees_on_random_text(s in "\\PC{0,48}") {
        same_as_owned(&s);
    }

    #[test]
    fn agrees_on_id_shaped_text(
        prefix in "[a-z_0-9]{0,12}",
        ms in "[0-9]{0,22}",
        n in "[0-9+-]{0,21}",
        random in proptest::option::of("[0-9a-fA-F_]{0,10}"),
    ) {
        let id = match random {
            Some(r) => format!("{prefix}_{ms}_{n}_{r}"),
            None => format!("{prefix}_{ms}_{n}"),
        };
        same_as_owned(&id);
    }

    /// Any text over the alphabet of ids plus an upper-case letter and a two-byte
    /// character: most of it matches no reading.
    #[test]
    fn agrees_on_text_over_the_id_alphabet(s in "[_0123456789abcdefX\u{e9}]{0,40}") {
        same_as_owned(&s);
    }

    /// The same alphabet shaped near the canonical `{prefix}_{13 digits}_{n}_{8 hex}`
    /// (the parser's fast path): each part is mostly its own kind of byte, sometimes not.
    #[test]
    fn agrees_near_the_canonical_shape(
        prefix in "[_0-9a-fX\u{e9}]{0,4}",
        ms in prop_oneof![3 => "[1-9][0-9]{12}", 1 => "[0-9]{12,14}", 1 => "[_0-9a-fX\u{e9}]{12,14}"],
        n in prop_oneof![3 => "[0-9]{1,7}", 1 => "[0-9]{0,17}", 1 => "[_0-9a-fX\u{e9}]{1,8}"],
        random in prop_oneof![3 => "[0-9a-f]{8}", 1 => "[0-9a-f]{0,17}", 1 => "[_0-9a-fX\u{e9}]{1,17}"],
        sep in prop::array::uniform3(prop_oneof![9 => Just('_'), 1 => Just('X'), 1 => Just('\u{e9}')]),
    ) {
        same_as_owned(&format!("{prefix}{}{ms}{}{n}{}{random}", sep[0], sep[1], sep[2]));
    }

    #[test]
    fn agrees_on_minted_ids(prefix in "[a-z][a-z0-9_]{0,10}", random in any::<bool>(), len in 1usize..=64, seed in any::<u64>(), now in 0u64..=u64::MAX / 2) {
        let g = IdGenerator::new(Arc::new(ManualClock::new(now)), SeededEntropy::from_seed(seed));
        let id = g.base_id(&prefix, random, len).unwrap();
        same_as_owned(&id);
        prop_assert!(parse_id_parts(&id).is_ok());
    }
}
