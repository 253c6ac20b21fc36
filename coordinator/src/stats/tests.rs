use super::*;

/// |actual - expected| <= rel · |expected| (or <= rel when expected is 0).
#[track_caller]
fn assert_close(actual: f64, expected: f64, rel: f64) {
    let tolerance = rel * expected.abs().max(if expected == 0.0 { 1.0 } else { 0.0 });
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} vs expected {expected}: off by {:e}, tolerance {tolerance:e}",
        (actual - expected).abs()
    );
}

#[track_caller]
fn assert_interval(actual: Interval, lo: f64, hi: f64, rel: f64) {
    assert_close(actual.lo, lo, rel);
    assert_close(actual.hi, hi, rel);
}

// Test errors (%) of realistic cells, reused below with their scipy results.
const SIG_A: [f64; 5] = [5.73, 5.86, 6.06, 5.78, 6.42];
const SIG_B: [f64; 5] = [4.97, 5.12, 5.01, 5.30, 4.88];
const UNEQ_A: [f64; 4] = [7.12, 6.85, 7.40, 6.98];
const UNEQ_B: [f64; 7] = [6.51, 6.90, 6.44, 6.72, 6.63, 6.80, 6.58];
const NONSIG_A: [f64; 4] = [3.21, 3.45, 3.10, 3.38];
const NONSIG_B: [f64; 4] = [3.30, 3.18, 3.52, 3.27];
const TEN_A: [f64; 10] = [5.73, 5.86, 6.06, 5.78, 6.42, 5.91, 6.12, 5.69, 5.95, 5.84];
const TEN_B: [f64; 10] = [5.61, 5.52, 5.80, 5.47, 5.88, 5.66, 5.71, 5.59, 5.93, 5.90];

#[test]
fn quantile_matches_scipy() {
    // scipy.stats.t.ppf(p, df), scipy 1.17.1.
    let cases = [
        (0.975, 1.0, 12.706204736174694),
        (0.975, 2.0, 4.302652729749462),
        (0.975, 4.0, 2.7764451051977934),
        (0.975, 9.0, 2.262157162798205),
        (0.975, 30.0, 2.0422724563012378),
        (0.975, 3.7, 2.8675207071911895),
        (0.995, 4.0, 4.604094871349992),
        (0.9, 2.5, 1.7302509288071766),
        (0.6, 10.0, 0.2601848294920803),
        (0.999999, 1.0, 318309.88617359026),
        (0.05, 7.0, -1.8945786050900066),
    ];
    for (p, df, expected) in cases {
        assert_close(student_t_quantile(p, df), expected, 1e-9);
    }
}

#[test]
fn cdf_matches_scipy() {
    // scipy.stats.t.cdf(t, df), scipy 1.17.1.
    let cases = [
        (2.0, 3.7, 0.939091399047383),
        (-1.5, 3.7, 0.10679908460100675),
        (0.3, 1.0, 0.5927735790777423),
        (2.5, 9.0, 0.9830690861585072),
        (-3.2, 4.0, 0.016450405300469487),
        (10.0, 2.0, 0.9950737714883372),
        (1.0, 30.0, 0.8373456922869849),
        (0.0, 5.0, 0.5),
        (-25.0, 6.3, 7.636737858031007e-08),
        (4.0, 0.7, 0.8833277397073143),
        // scipy.stats.t.sf(40.0, 5) and t.sf(1000.0, 3.2), as cdf(-t): far
        // tails keep their relative precision.
        (-40.0, 5.0, 9.205981085886477e-08),
        (-1000.0, 3.2, 3.3353744403069255e-10),
    ];
    for (t, df, expected) in cases {
        assert_close(student_t_cdf(t, df), expected, 1e-9);
    }
}

#[test]
fn pdf_matches_scipy() {
    // scipy.stats.t.pdf(t, df), scipy 1.17.1; t.pdf(0, 1) is 1/π.
    let cases = [
        (0.0, 1.0, std::f64::consts::FRAC_1_PI),
        (1.3, 3.7, 0.15414780362964772),
        (-2.2, 9.0, 0.045123512071665435),
        (15.0, 2.5, 0.00013494493793627998),
    ];
    for (t, df, expected) in cases {
        assert_close(student_t_pdf(t, df), expected, 1e-9);
    }
}

#[test]
fn ln_gamma_matches_scipy() {
    // scipy.special.gammaln(x), scipy 1.17.1.
    let cases = [
        (0.5, 0.5723649429247),
        (1.0, 0.0),
        (1.5, -0.12078223763524526),
        (3.7, 1.428072326665388),
        (10.0, 12.801827480081469),
        (100.25, 360.28455963776423),
        (0.01, 4.599479878042022),
        (10000.0, 82099.71749644238),
    ];
    for (x, expected) in cases {
        // ln Γ(1) = 0 has no relative scale: there the check is absolute.
        assert_close(ln_gamma(x), expected, 1e-12);
    }
    assert!(ln_gamma(0.0).is_nan() && ln_gamma(-1.5).is_nan());
}

#[test]
fn incomplete_beta_matches_scipy() {
    // scipy.special.betainc(a, b, x), scipy 1.17.1.
    let cases = [
        (2.5, 0.5, 0.3, 0.018927124071945658),
        (0.5, 3.0, 0.9, 0.9996750253207289),
        (10.0, 20.0, 0.4, 0.7853183897628262),
        (1.0, 1.0, 0.25, 0.25),
        (50.0, 0.5, 0.99, 0.3173043978741973),
    ];
    for (a, b, x, expected) in cases {
        assert_close(regularized_incomplete_beta(a, b, x), expected, 1e-9);
    }
    assert_eq!(regularized_incomplete_beta(2.0, 3.0, 0.0), 0.0);
    assert_eq!(regularized_incomplete_beta(2.0, 3.0, 1.0), 1.0);
    assert!(regularized_incomplete_beta(2.0, 3.0, 1.5).is_nan());
}

#[test]
fn welch_matches_scipy() {
    struct Case {
        a: &'static [f64],
        b: &'static [f64],
        t: f64,
        df: f64,
        p: f64,
        difference: f64,
        interval: (f64, f64),
    }
    // r = scipy.stats.ttest_ind(a, b, equal_var=False); ci = r.confidence_interval(0.95)
    // (scipy 1.17.1): t = r.statistic, df = r.df, p = r.pvalue, difference = np.mean(a) -
    // np.mean(b), interval = (ci.low, ci.high), which equals difference ± t.ppf(0.975, r.df)
    // · sqrt(va/na + vb/nb).
    let cases = [
        Case {
            a: &SIG_A,
            b: &SIG_B,
            t: 6.303298377564121,
            df: 6.375382603200533,
            p: 0.000586073893113805,
            difference: 0.9140000000000015,
            interval: (0.5641924369539237, 1.2638075630460792),
        },
        Case {
            a: &UNEQ_A,
            b: &UNEQ_B,
            t: 3.259014338832054,
            df: 4.681817634129585,
            p: 0.02472718627552698,
            difference: 0.43321428571428555,
            interval: (0.08440759617332416, 0.7820209752552469),
        },
        Case {
            a: &NONSIG_A,
            b: &NONSIG_B,
            t: -0.30243464546144677,
            df: 5.942551826495071,
            p: 0.7726266509598979,
            difference: -0.03249999999999975,
            interval: (-0.29606558067216715, 0.23106558067216765),
        },
    ];
    for case in cases {
        let c = welch(case.a, case.b, 0.95).unwrap();
        let Method::Welch { t, df } = c.method else { panic!("{:?}", c.method) };
        assert_close(t, case.t, 1e-9);
        assert_close(df, case.df, 1e-9);
        assert_close(c.p_value, case.p, 1e-9);
        assert_close(c.difference, case.difference, 1e-9);
        assert_interval(c.interval, case.interval.0, case.interval.1, 1e-9);
    }
    assert_eq!(welch(&SIG_A, &SIG_B, 0.95).unwrap().stars(), "***");
    assert_eq!(welch(&UNEQ_A, &UNEQ_B, 0.95).unwrap().stars(), "*");
    assert_eq!(welch(&NONSIG_A, &NONSIG_B, 0.95).unwrap().stars(), "");
}

#[test]
fn mean_interval_matches_scipy() {
    // scipy.stats.t.interval(level, len(v) - 1, loc=np.mean(v), scale=scipy.stats.sem(v)),
    // scipy 1.17.1: (v, level, lo, hi).
    let seven_ten = [7.12, 6.85, 7.40, 6.98, 7.01, 6.93, 7.25, 7.08, 6.99, 7.30];
    let cases: [(&[f64], f64, f64, f64); 6] = [
        (&SIG_A, 0.95, 5.620785449588887, 6.319214550411115),
        (&SIG_A, 0.99, 5.390908082231267, 6.549091917768735),
        (&[3.21, 3.45], 0.95, 1.8052554316590357, 4.854744568340965),
        (&[3.21, 3.45], 0.99, -4.308808939544589, 10.968808939544589),
        (&seven_ten, 0.95, 6.965163589349697, 7.216836410650306),
        (&seven_ten, 0.99, 6.910222268689817, 7.271777731310185),
    ];
    for (values, level, lo, hi) in cases {
        assert_interval(mean_interval(values, level).unwrap(), lo, hi, 1e-9);
    }
}

#[test]
fn exact_permutation_matches_scipy() {
    // scipy.stats.permutation_test((a, b), lambda x, y, axis: np.abs(np.mean(x, axis=axis)
    // - np.mean(y, axis=axis)), permutation_type='independent', alternative='greater',
    // n_resamples=np.inf, vectorized=True).pvalue, scipy 1.17.1: the share of splits with
    // |diff| >= observed |diff|, which is this module's two-sided p. (scipy's
    // alternative='two-sided' on the signed difference doubles the smaller one-sided p
    // instead; the two agree for equal sizes, but give 0.2667 for the 2 vs 4 case.)
    // Also checked by brute force over itertools.combinations. (a, b, p, splits).
    let cases: [(&[f64], &[f64], f64, u64); 7] = [
        (&[5.73, 5.86, 6.06], &[4.97, 5.12, 5.01], 0.1, 20),
        (&[5.1, 6.3, 5.8], &[5.5, 4.9, 6.0], 0.7, 20),
        (&[6.10, 5.95], &[5.40, 5.72, 6.01, 5.55], 0.2, 15),
        (&SIG_A, &SIG_B, 0.007936507936507936, 252),
        (&[3.21, 3.45, 3.10, 3.38, 3.29], &[3.30, 3.18, 3.52, 3.27, 3.41], 0.5793650793650794, 252),
        // Ties: splits equal to the observed one must not be lost to rounding.
        (&[5.0, 5.5, 6.0], &[5.5, 6.0, 6.5], 0.5, 20),
        (&TEN_A[..9], &TEN_B[..9], 0.010201563142739614, 48620),
    ];
    for (a, b, p, splits) in cases {
        let c = permutation(a, b, 0.95).unwrap();
        assert_eq!(c.method, Method::Permutation { exact: true, permutations: splits });
        assert_close(c.p_value, p, 1e-9);
        // The interval is Welch's.
        assert_eq!(c.interval, welch(a, b, 0.95).unwrap().interval);
    }
}

#[test]
fn monte_carlo_permutation_is_close_to_exact_and_reproducible() {
    // 10 vs 10 has C(20, 10) = 184,756 splits, past EXACT_LIMIT. Its exact p, from the
    // scipy.stats.permutation_test call of exact_permutation_matches_scipy (scipy 1.17.1):
    let exact = 0.013477234839463942;
    let c = permutation(&TEN_A, &TEN_B, 0.95).unwrap();
    assert_eq!(c.method, Method::Permutation { exact: false, permutations: MONTE_CARLO_PERMUTATIONS });
    let standard_error = (exact * (1.0 - exact) / MONTE_CARLO_PERMUTATIONS as f64).sqrt();
    assert!((c.p_value - exact).abs() < 5.0 * standard_error, "{} vs {exact}", c.p_value);
    assert_eq!(permutation(&TEN_A, &TEN_B, 0.95), Some(c));
    let mut reversed = TEN_A;
    reversed.reverse();
    assert_eq!(permutation(&reversed, &TEN_B, 0.95), Some(c));
}

#[test]
fn compare_uses_permutation_for_small_samples_and_welch_otherwise() {
    let small = compare(&SIG_A, &SIG_B, LEVEL).unwrap();
    assert_eq!(small.method, Method::Permutation { exact: true, permutations: 252 });
    assert_eq!(small.stars(), "**");

    // scipy.stats.ttest_ind(TEN_A, TEN_B, equal_var=False).pvalue, scipy 1.17.1.
    let large = compare(&TEN_A, &TEN_B, LEVEL).unwrap();
    assert!(matches!(large.method, Method::Welch { .. }));
    assert_close(large.p_value, 0.016768103375633087, 1e-9);

    // Three seeds against 90: C(93, 3) = 129,766 splits, so Monte Carlo.
    let many: Vec<f64> = (0..90).map(|i| 5.0 + f64::from(i % 7) * 0.1).collect();
    let lopsided = compare(&[5.2, 5.9, 6.1], &many, LEVEL).unwrap();
    assert_eq!(lopsided.method, Method::Permutation { exact: false, permutations: MONTE_CARLO_PERMUTATIONS });
}

#[test]
fn constant_samples() {
    // No t, hence no Welch test; the permutation test still has a p-value.
    assert_eq!(welch(&[5.0, 5.0, 5.0], &[6.0, 6.0, 6.0], 0.95), None);
    let c = compare(&[5.0, 5.0, 5.0], &[6.0, 6.0, 6.0], 0.95).unwrap();
    assert_close(c.p_value, 0.1, 1e-12);
    assert_eq!(c.interval, Interval { lo: -1.0, hi: -1.0 });
    assert_eq!(mean_interval(&[5.0, 5.0], 0.95), Some(Interval { lo: 5.0, hi: 5.0 }));
    // Large constant samples fall back from Welch to the permutation test.
    let twelve = [4.5; 12];
    let c = compare(&twelve, &twelve, 0.95).unwrap();
    assert!(matches!(c.method, Method::Permutation { exact: false, .. }));
    assert_eq!(c.p_value, 1.0);
}

#[test]
fn undefined_cases_are_none() {
    assert_eq!(mean_interval(&[], 0.95), None);
    assert_eq!(mean_interval(&[5.0], 0.95), None);
    assert_eq!(mean_interval(&[5.0, f64::NAN], 0.95), None);
    assert_eq!(welch(&[5.0], &SIG_B, 0.95), None);
    assert_eq!(permutation(&SIG_A, &[5.0], 0.95), None);
    assert_eq!(compare(&[5.0, f64::INFINITY], &SIG_B, 0.95), None);
}

#[test]
#[should_panic(expected = "confidence level")]
fn level_out_of_range_panics() {
    mean_interval(&SIG_A, 95.0);
}

#[test]
fn quantile_inverts_cdf() {
    for df in [0.5, 1.0, 1.7, 2.0, 3.7, 6.375382603200533, 9.0, 30.0, 250.0, 1e4] {
        // No far right tail: there p rounds to near 1 and pins t only loosely (its mirror
        // image in the left tail is checked instead, where p keeps its precision).
        for t in [-300.0, -40.0, -12.0, -2.5, -1.0, -0.25, -1e-3, 1e-3, 0.1, 0.7, 1.96, 4.0] {
            let p = student_t_cdf(t, df);
            // A subnormal (or underflowed) p has lost the digits that would pin t down.
            if p.is_normal() {
                assert_close(student_t_quantile(p, df), t, 1e-9);
            }
        }
        for p in [1e-12, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.77, 0.975, 0.999] {
            assert_close(student_t_cdf(student_t_quantile(p, df), df), p, 1e-9);
        }
    }
}

#[test]
fn distribution_is_symmetric() {
    for df in [1.0, 2.3, 4.0, 17.5] {
        for t in [0.01, 0.5, 1.0, 2.0, 8.0] {
            // Absolute: 1 - cdf(t) has only absolute precision.
            assert!((student_t_cdf(-t, df) + student_t_cdf(t, df) - 1.0).abs() <= 1e-15);
            assert_eq!(student_t_pdf(-t, df), student_t_pdf(t, df));
        }
        for p in [0.001, 0.1, 0.4] {
            assert_close(student_t_quantile(1.0 - p, df), -student_t_quantile(p, df), 1e-12);
        }
        assert_eq!(student_t_cdf(0.0, df), 0.5);
        assert_eq!(student_t_quantile(0.5, df), 0.0);
        assert_eq!(student_t_quantile(0.0, df), f64::NEG_INFINITY);
        assert_eq!(student_t_quantile(1.0, df), f64::INFINITY);
        assert_eq!(student_t_cdf(f64::INFINITY, df), 1.0);
        assert_eq!(student_t_cdf(f64::NEG_INFINITY, df), 0.0);
    }
    assert!(student_t_quantile(1.2, 3.0).is_nan());
    assert!(student_t_cdf(1.0, 0.0).is_nan());
    assert!(student_t_cdf(1.0, f64::INFINITY).is_nan());
}

#[test]
fn cdf_is_monotone() {
    for df in [0.8, 3.0, 12.4] {
        let cdfs: Vec<f64> = (-400..=400).map(|i| student_t_cdf(f64::from(i) * 0.05, df)).collect();
        assert!(cdfs.windows(2).all(|w| w[0] <= w[1]), "df {df}");
    }
}

/// Pseudo-random cells of test errors, for the property checks.
fn random_cells(seed: u64) -> impl Iterator<Item = (Vec<f64>, Vec<f64>)> {
    let mut rng = SplitMix64(seed);
    std::iter::from_fn(move || {
        let mut cell = |shift: f64| {
            let n = 2 + rng.below(11);
            (0..n).map(|_| shift + (rng.next() >> 11) as f64 / (1u64 << 53) as f64).collect::<Vec<f64>>()
        };
        let a = cell(5.0);
        let b = cell(5.3);
        Some((a, b))
    })
    .take(40)
}

#[test]
fn p_values_are_probabilities_and_agree_with_swapping() {
    for (a, b) in random_cells(1) {
        for test in [welch, permutation, compare] {
            let ab = test(&a, &b, LEVEL).unwrap();
            assert!((0.0..=1.0).contains(&ab.p_value), "{ab:?}");
            assert!(ab.interval.lo <= ab.difference && ab.difference <= ab.interval.hi);
            let ba = test(&b, &a, LEVEL).unwrap();
            assert_close(ba.p_value, ab.p_value, 1e-12);
            assert_close(ba.difference, -ab.difference, 1e-12);
            assert_close(ba.interval.half_width(), ab.interval.half_width(), 1e-12);
        }
    }
}

#[test]
fn a_sample_against_itself_has_p_one() {
    for (a, _) in random_cells(2).chain([(TEN_A.to_vec(), vec![])]) {
        let c = compare(&a, &a, LEVEL).unwrap();
        assert_eq!(c.p_value, 1.0, "{c:?}");
        assert_eq!(c.difference, 0.0);
        assert_eq!(stars(c.p_value), "");
        // And against a reordering of itself.
        let mut reversed = a.clone();
        reversed.reverse();
        assert_eq!(compare(&a, &reversed, LEVEL).unwrap().p_value, 1.0);
    }
}

#[test]
fn order_of_values_does_not_matter() {
    for (a, b) in random_cells(3) {
        let mut a2 = a.clone();
        a2.reverse();
        let mut b2 = b.clone();
        b2.rotate_left(1);
        assert_eq!(mean_interval(&a, LEVEL), mean_interval(&a2, LEVEL));
        for test in [welch, permutation, compare] {
            assert_eq!(test(&a, &b, LEVEL), test(&a2, &b2, LEVEL));
        }
    }
}

#[test]
fn intervals_have_the_stated_width() {
    let i = mean_interval(&SIG_A, LEVEL).unwrap();
    let mean = SIG_A.iter().sum::<f64>() / 5.0;
    assert_close((i.lo + i.hi) / 2.0, mean, 1e-12);
    // scipy.stats.t.ppf(0.975, 4) · scipy.stats.sem(SIG_A); scipy 1.17.1 gives t.ppf.
    let sem = (SIG_A.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0 / 5.0).sqrt();
    assert_close(i.half_width(), 2.7764451051977934 * sem, 1e-9);
    assert!(i.contains(mean) && i.contains(i.lo) && i.contains(i.hi));
    assert!(!i.contains(i.hi + 1e-9) && !i.contains(f64::NAN));
    // A higher level gives a wider interval.
    assert!(mean_interval(&SIG_A, 0.99).unwrap().half_width() > i.half_width());
}

#[test]
fn stars_follow_the_usual_thresholds() {
    assert_eq!(stars(0.0), "***");
    assert_eq!(stars(0.000999), "***");
    assert_eq!(stars(0.001), "**");
    assert_eq!(stars(0.009), "**");
    assert_eq!(stars(0.01), "*");
    assert_eq!(stars(0.049), "*");
    assert_eq!(stars(0.05), "");
    assert_eq!(stars(1.0), "");
    assert_eq!(stars(f64::NAN), "");
}

#[test]
fn combinations_are_all_enumerated() {
    assert_eq!(binomial_up_to(20, 10, u64::MAX), Some(184_756));
    assert_eq!(binomial_up_to(20, 10, EXACT_LIMIT), None);
    assert_eq!(binomial_up_to(18, 9, EXACT_LIMIT), Some(48_620));
    assert_eq!(binomial_up_to(93, 3, EXACT_LIMIT), None);
    let mut chosen = vec![0, 1, 2];
    let mut count = 1;
    while next_combination(&mut chosen, 7) {
        assert!(chosen.windows(2).all(|w| w[0] < w[1]) && chosen[2] < 7);
        count += 1;
    }
    assert_eq!(count, 35);
    assert_eq!(chosen, vec![4, 5, 6]);
}

/// Pairs (seed, value) of two cells that share their seeds 1..=n.
fn seeded(values: &[f64]) -> Vec<(u64, f64)> {
    values.iter().enumerate().map(|(i, v)| (i as u64 + 1, *v)).collect()
}

#[test]
fn paired_t_matches_scipy() {
    // scipy.stats.ttest_rel(a, b) and its confidence_interval(0.95),
    // scipy 1.17.1: (a, b, mean difference, t, p, ci lo, ci hi).
    // (a, b, mean difference, t, p, ci lo, ci hi)
    type Case<'a> = (&'a [f64], &'a [f64], f64, f64, f64, f64, f64);
    let cases: [Case; 6] = [
        (
            &SIG_A,
            &SIG_B,
            0.9140000000000003,
            5.0593850544854,
            0.00718363373922783,
            0.41242306943983054,
            1.41557693056017,
        ),
        // The quickstart's B(3,3) k=1 against k=2, seeds 1 and 2.
        (
            &[31.9, 41.2],
            &[30.9, 30.9],
            5.650000000000002,
            1.21505376344086,
            0.43838536323486627,
            -53.43385202321235,
            64.73385202321235,
        ),
        (
            &[36.0, 41.0],
            &[35.0, 38.5],
            1.75,
            2.3333333333333335,
            0.2577621168183132,
            -7.77965355213102,
            11.27965355213102,
        ),
        // Tied differences (1, 1, 2, 1).
        (
            &[3.0, 4.0, 5.0, 6.0],
            &[2.0, 3.0, 3.0, 5.0],
            1.25,
            5.0,
            0.015392438073302294,
            0.45438842367907306,
            2.045611576320927,
        ),
        // Two seeds with a zero difference.
        (
            &[5.0, 5.0, 6.0, 7.5, 6.2],
            &[5.0, 4.0, 6.0, 6.0, 6.0],
            0.54,
            1.7842102212287425,
            0.14895174921575538,
            -0.3003047684449931,
            1.3803047684449932,
        ),
        (
            &TEN_A,
            &TEN_B,
            0.22900000000000018,
            3.930594461075938,
            0.003454924397381103,
            0.09720467097005345,
            0.36079532902994693,
        ),
    ];
    for (a, b, difference, t, p, lo, hi) in cases {
        let c = paired(&seeded(a), &seeded(b), LEVEL).unwrap();
        assert_close(c.difference, difference, 1e-12);
        let Method::PairedT { t: statistic, pairs } = c.method else { panic!("{:?}", c.method) };
        assert_eq!(pairs, a.len());
        assert_close(statistic, t, 1e-9);
        assert_close(c.p_value, p, 1e-9);
        assert_interval(c.interval, lo, hi, 1e-9);
        assert!(c.method.is_paired());
    }
}

#[test]
fn pairing_follows_the_seeds_not_the_order() {
    let a = [(3, 6.06), (1, 5.73), (5, 6.42), (2, 5.86), (4, 5.78)];
    let b = [(1, 4.97), (2, 5.12), (3, 5.01), (4, 5.30), (5, 4.88), (9, 1.0)];
    let c = paired(&a, &b, LEVEL).unwrap();
    assert_close(c.p_value, 0.00718363373922783, 1e-9);
    assert!(matches!(c.method, Method::PairedT { pairs: 5, .. }));
}

#[test]
fn equal_differences_get_the_exact_sign_flip_test() {
    // All differences 0: nothing to see, p = 1.
    let c = paired(&seeded(&[30.9, 41.2]), &seeded(&[30.9, 41.2]), LEVEL).unwrap();
    assert_eq!((c.difference, c.p_value), (0.0, 1.0));
    assert_eq!(c.method, Method::SignFlip { pairs: 2 });
    // Every seed 1.0 better: of the 2^n sign flips only this one and its
    // mirror are as extreme, p = 2 / 2^n.
    let c = paired(&seeded(&[2.0, 3.0, 4.0, 5.0, 6.0]), &seeded(&[1.0, 2.0, 3.0, 4.0, 5.0]), LEVEL).unwrap();
    assert_eq!(c.p_value, 0.0625);
    assert_eq!(c.interval, Interval { lo: 1.0, hi: 1.0 });
    assert_eq!(c.method.name(), "sign-flip (exact)");
}

#[test]
fn fewer_than_two_shared_seeds_are_no_paired_comparison() {
    assert_eq!(paired(&seeded(&[5.0]), &seeded(&[4.0]), LEVEL), None);
    assert_eq!(paired(&[(1, 5.0), (2, 6.0)], &[(2, 4.0), (3, 4.5)], LEVEL), None);
    assert_eq!(paired(&seeded(&[5.0, f64::NAN]), &seeded(&[4.0, 4.0]), LEVEL), None);
}

#[test]
fn corrections_match_statsmodels() {
    // statsmodels 0.15.0 multipletests(p, method="holm" / "fdr_bh")[1];
    // the second set as scipy.stats.false_discovery_control(p) too.
    let p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04];
    let holm = [0.05, 0.12, 0.12, 0.03, 0.2, 0.12];
    let bh = [0.03, 0.048, 0.048, 0.03, 0.2, 0.048];
    for (got, want) in Correction::Holm.adjust(&p).iter().zip(holm) {
        assert_close(*got, want, 1e-12);
    }
    for (got, want) in Correction::BenjaminiHochberg.adjust(&p).iter().zip(bh) {
        assert_close(*got, want, 1e-12);
    }
    let p = [0.5, 0.0625, 0.9];
    assert_eq!(Correction::Holm.adjust(&p), vec![1.0, 0.1875, 1.0]);
    for (got, want) in Correction::BenjaminiHochberg.adjust(&p).iter().zip([0.75, 0.1875, 0.9]) {
        assert_close(*got, want, 1e-12);
    }
    assert_eq!(Correction::None.adjust(&p), p.to_vec());
    // One comparison is not corrected; NaN stays out of the count.
    assert_eq!(Correction::Holm.adjust(&[0.03]), vec![0.03]);
    let with_nan = Correction::Holm.adjust(&[0.03, f64::NAN, 0.02]);
    assert_eq!((with_nan[0], with_nan[2]), (0.04, 0.04));
    assert!(with_nan[1].is_nan());
}

#[test]
fn correction_names_round_trip_and_unknown_ones_list_the_valid() {
    for c in Correction::ALL {
        assert_eq!(c.name().parse::<Correction>().unwrap(), c);
    }
    let error = "bonferroni".parse::<Correction>().unwrap_err().to_string();
    assert!(error.contains("bonferroni") && error.contains("holm, bh"), "{error}");
}

#[test]
fn intervals_are_clipped_to_the_metric_range_with_a_mark() {
    let (clipped, cut) = Interval { lo: -22.53, hi: 95.63 }.clipped(0.0, 100.0);
    assert_eq!((clipped, cut), (Interval { lo: 0.0, hi: 95.63 }, true));
    let inside = Interval { lo: 30.9, hi: 30.9 };
    assert_eq!(inside.clipped(0.0, 100.0), (inside, false));
    assert_eq!(Interval { lo: -6.0, hi: 104.2 }.clipped(0.0, 100.0).0, Interval { lo: 0.0, hi: 100.0 });
}

proptest::proptest! {
    #[test]
    fn adjusted_p_values_are_between_the_raw_value_and_one(p in proptest::collection::vec(0f64..=1.0, 1..30)) {
        for correction in Correction::ALL {
            for (raw, adjusted) in p.iter().zip(correction.adjust(&p)) {
                proptest::prop_assert!(*raw <= adjusted + 1e-15 && adjusted <= 1.0, "{correction}: {raw} -> {adjusted}");
            }
        }
        // Holm is never less strict than BH.
        for (holm, bh) in Correction::Holm.adjust(&p).iter().zip(Correction::BenjaminiHochberg.adjust(&p)) {
            proptest::prop_assert!(*holm >= bh - 1e-15);
        }
    }
}
