use super::*;

fn ours(reference: &str, status: PaymentStatus, amount: i64) -> OurPayment {
    OurPayment {
        our_reference: reference.into(),
        biller_reference: Some(format!("R-{reference}")),
        channel_id: "app".into(),
        account: "100".into(),
        amount_minor: amount,
        currency: "CNY".into(),
        status,
        connector_id: Some("water-direct".into()),
        core: true,
        decided: None,
        resent_later: false,
        resent_from: None,
    }
}

fn theirs(reference: &str, status: RecordStatus, amount: i64, line: u64) -> Sourced {
    Sourced {
        record: TheirRecord {
            our_reference: reference.into(),
            their_reference: if status == RecordStatus::Credited {
                format!("R-{reference}")
            } else {
                String::new()
            },
            biller_id: "sh-water".into(),
            account: "100".into(),
            amount_minor: amount,
            currency: "CNY".into(),
            status,
            at: None,
            line,
        },
        file_id: 7,
        kind: FileKind::WaterCsv,
        core: true,
    }
}

fn rules() -> MatchRules {
    MatchRules {
        tolerance_minor: 0,
        grace_elapsed: true,
        covered: ["water-direct".to_string()].into(),
        file_routes: Default::default(),
    }
}

fn category(v: &[Verdict]) -> Vec<Category> {
    v.iter()
        .filter_map(|v| match v {
            Verdict::Break(f) => Some(f.category),
            _ => None,
        })
        .collect()
}

use PaymentStatus::*;
use RecordStatus::{Credited, Failed};

#[test]
fn confirmed_and_credited_with_equal_amount_and_reference_is_matched() {
    let v = judge(
        Some(&ours("a", Confirmed, 1250)),
        &[theirs("a", Credited, 1250, 2)],
        &rules(),
    );
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
    let v = judge(
        Some(&ours("a", Settled, 1250)),
        &[theirs("a", Credited, 1250, 2)],
        &rules(),
    );
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
}

#[test]
fn confirmed_and_absent_where_we_looked_is_missing_at_biller() {
    let v = judge(Some(&ours("a", Confirmed, 1250)), &[], &rules());
    assert_eq!(category(&v), vec![Category::MissingAtBiller]);
}

#[test]
fn a_payment_re_sent_after_the_date_is_no_break_of_the_date() {
    let mut o = ours("a", Confirmed, 1250);
    o.resent_later = true;
    let v = judge(Some(&o), &[], &rules());
    assert_eq!(v, vec![Verdict::Pending(Pending::Resent)]);
    // Its record on the date still counts as it would: a credit matches,
    // and a failure is still a status mismatch.
    let v = judge(
        Some(&o),
        &[theirs("a", RecordStatus::Credited, 1250, 1)],
        &rules(),
    );
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
    let v = judge(
        Some(&o),
        &[theirs("a", RecordStatus::Failed, 1250, 1)],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::StatusMismatch]);
}

#[test]
fn a_credit_through_the_route_a_payment_was_re_sent_away_from_is_a_duplicate() {
    let mut o = ours("a", Confirmed, 1250);
    o.resent_from = Some("hub".into());
    o.resent_later = true;
    let mut late = theirs("a", RecordStatus::Credited, 1250, 7);
    late.kind = FileKind::HubStatement;
    let v = judge(Some(&o), &[late.clone()], &rules());
    assert_eq!(category(&v), vec![Category::DuplicateAtBiller]);
    let Verdict::Break(f) = &v[0] else { panic!() };
    assert!(f.detail.contains("delivered twice"), "{}", f.detail);
    // Its credit through the new route is the expected one.
    let v = judge(
        Some(&o),
        &[theirs("a", RecordStatus::Credited, 1250, 1)],
        &rules(),
    );
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
    // Both: credited twice.
    let v = judge(
        Some(&o),
        &[theirs("a", RecordStatus::Credited, 1250, 1), late],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::DuplicateAtBiller]);
}

#[test]
fn absence_proves_nothing_when_the_connector_file_is_not_an_input() {
    let mut r = rules();
    r.covered.clear();
    let v = judge(Some(&ours("a", Confirmed, 1250)), &[], &r);
    assert_eq!(v, vec![Verdict::Pending(Pending::SourceMissing)]);
    let v = judge(Some(&ours("a", Unknown, 1250)), &[], &r);
    assert_eq!(v, vec![Verdict::Pending(Pending::SourceMissing)]);
}

#[test]
fn credited_without_our_payment_or_against_a_rejected_one_is_missing_at_us() {
    let v = judge(None, &[theirs("x", Credited, 500, 3)], &rules());
    assert_eq!(category(&v), vec![Category::MissingAtUs]);
    let v = judge(
        Some(&ours("x", Rejected, 500)),
        &[theirs("x", Credited, 500, 3)],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::MissingAtUs]);
}

#[test]
fn amounts_are_compared_exactly_unless_a_tolerance_is_set() {
    let v = judge(
        Some(&ours("a", Confirmed, 1250)),
        &[theirs("a", Credited, 1251, 2)],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::AmountMismatch]);
    let mut r = rules();
    r.tolerance_minor = 1;
    let v = judge(
        Some(&ours("a", Confirmed, 1250)),
        &[theirs("a", Credited, 1251, 2)],
        &r,
    );
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: true
        }]
    );
    let mut other = theirs("a", Credited, 1250, 2);
    other.record.currency = "USD".into();
    let v = judge(Some(&ours("a", Confirmed, 1250)), &[other], &r);
    assert_eq!(
        category(&v),
        vec![Category::AmountMismatch],
        "currency differs"
    );
}

#[test]
fn credited_twice_is_a_duplicate_whatever_our_status() {
    for status in [Confirmed, Unknown, Rejected, Settled] {
        let v = judge(
            Some(&ours("a", status, 1250)),
            &[
                theirs("a", Credited, 1250, 2),
                theirs("a", Credited, 1250, 9),
            ],
            &rules(),
        );
        assert_eq!(
            category(&v),
            vec![Category::DuplicateAtBiller],
            "{status:?}"
        );
    }
}

#[test]
fn confirmed_but_failed_at_their_end_is_a_status_mismatch() {
    let v = judge(
        Some(&ours("a", Confirmed, 1250)),
        &[theirs("a", Failed, 1250, 2)],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::StatusMismatch]);
}

#[test]
fn a_different_biller_reference_is_a_reference_mismatch() {
    let mut t = theirs("a", Credited, 1250, 2);
    t.record.their_reference = "R-other".into();
    let v = judge(Some(&ours("a", Confirmed, 1250)), &[t], &rules());
    assert_eq!(category(&v), vec![Category::ReferenceMismatch]);
}

#[test]
fn unknown_and_credited_is_confirmed_with_its_evidence() {
    let v = judge(
        Some(&ours("a", Unknown, 1250)),
        &[theirs("a", Credited, 1250, 4)],
        &rules(),
    );
    match &v[..] {
        [Verdict::Decide(Decision::Confirm {
            our_reference,
            evidence,
        })] => {
            assert_eq!(our_reference, "a");
            assert_eq!(evidence.line, 4);
            assert_eq!(evidence.file_id, 7);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_credited_with_another_amount_is_not_confirmed() {
    let v = judge(
        Some(&ours("a", Unknown, 1250)),
        &[theirs("a", Credited, 1200, 4)],
        &rules(),
    );
    assert_eq!(category(&v), vec![Category::AmountMismatch]);
}

#[test]
fn unknown_and_absent_is_rejected_only_after_the_grace_period() {
    let mut r = rules();
    r.grace_elapsed = false;
    let v = judge(Some(&ours("a", Unknown, 1250)), &[], &r);
    assert_eq!(v, vec![Verdict::Pending(Pending::WithinGrace)]);
    let v = judge(Some(&ours("a", Unknown, 1250)), &[], &rules());
    assert!(
        matches!(&v[..], [Verdict::Decide(Decision::Reject { connector, .. })] if connector == "water-direct")
    );
}

#[test]
fn in_flight_payments_are_pending_and_failed_rejections_agree() {
    let v = judge(Some(&ours("a", Submitted, 1250)), &[], &rules());
    assert_eq!(v, vec![Verdict::Pending(Pending::InFlight)]);
    let v = judge(
        Some(&ours("a", Rejected, 1250)),
        &[theirs("a", Failed, 1250, 2)],
        &rules(),
    );
    assert_eq!(v, vec![Verdict::AgreedNotApplied]);
}

#[test]
fn groups_of_other_dates_are_left_alone() {
    let mut o = ours("a", Confirmed, 1250);
    o.core = false;
    assert!(judge(Some(&o), &[], &rules()).is_empty());
    let mut t = theirs("b", Credited, 10, 1);
    t.core = false;
    assert!(judge(None, &[t.clone()], &rules()).is_empty());
    // A payment of yesterday credited today is matched, not missing at us.
    let v = judge(Some(&o), &[theirs("a", Credited, 1250, 1)], &rules());
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
    // A payment of today credited after midnight is matched too.
    let mut t = theirs("a", Credited, 1250, 1);
    t.core = false;
    let v = judge(Some(&ours("a", Confirmed, 1250)), &[t], &rules());
    assert_eq!(
        v,
        vec![Verdict::Matched {
            within_tolerance: false
        }]
    );
}

#[test]
fn merge_groups_by_reference_and_refuses_unsorted_input() {
    let o = vec![ours("a", Confirmed, 1), ours("c", Confirmed, 1)];
    let t = vec![
        theirs("a", Credited, 1, 1),
        theirs("b", Credited, 1, 2),
        theirs("b", Credited, 1, 3),
        theirs("d", Credited, 1, 4),
    ];
    let mut seen = Vec::new();
    merge::<OrderError>(o.into_iter().map(Ok), t.into_iter().map(Ok), |g| {
        seen.push((
            g.ours.map(|o| o.our_reference),
            g.theirs.iter().map(|t| t.record.line).collect::<Vec<_>>(),
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (Some("a".to_string()), vec![1]),
            (None, vec![2, 3]),
            (Some("c".to_string()), vec![]),
            (None, vec![4]),
        ]
    );
    let bad = vec![ours("b", Confirmed, 1), ours("a", Confirmed, 1)];
    let err =
        merge::<OrderError>(bad.into_iter().map(Ok), std::iter::empty(), |_| Ok(())).unwrap_err();
    assert_eq!(err.side, "our");
    let bad = vec![theirs("b", Credited, 1, 1), theirs("a", Credited, 1, 2)];
    let err =
        merge::<OrderError>(std::iter::empty(), bad.into_iter().map(Ok), |_| Ok(())).unwrap_err();
    assert_eq!(err.side, "their");
}

#[test]
fn minor_units_render_exactly() {
    assert_eq!(minor_to_string(0, 2), "0.00");
    assert_eq!(minor_to_string(5, 2), "0.05");
    assert_eq!(minor_to_string(-1205, 2), "-12.05");
    assert_eq!(minor_to_string(100, 0), "100");
}

#[test]
fn a_payment_decided_by_an_earlier_run_counts_as_that_decision_again() {
    let mut o = ours("a", Confirmed, 1250);
    o.decided = Some(Earlier::Confirm);
    let v = judge(Some(&o), &[theirs("a", Credited, 1250, 4)], &rules());
    assert_eq!(v, vec![Verdict::DecidedBefore(Earlier::Confirm)]);
    let mut o = ours("b", Rejected, 1250);
    o.decided = Some(Earlier::Reject);
    assert_eq!(
        judge(Some(&o), &[], &rules()),
        vec![Verdict::DecidedBefore(Earlier::Reject)]
    );
    // A break found later is still a break.
    let mut o = ours("c", Confirmed, 1250);
    o.decided = Some(Earlier::Confirm);
    let v = judge(Some(&o), &[theirs("c", Credited, 1300, 4)], &rules());
    assert_eq!(category(&v), vec![Category::AmountMismatch]);
}
