//! The distribution functions the tests need: Student's t (CDF, density,
//! quantile) on top of ln Γ and the regularized incomplete beta function.

use std::f64::consts::PI;

/// P(T <= t) for Student's t with `df` degrees of freedom; `df` may be any
/// positive finite number (Welch's are not integers). NaN for a NaN
/// argument or an invalid `df`.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let tail = two_sided_tail(t, df);
    // Half the two-sided tail is computed directly, so that the far left
    // tail keeps its relative precision instead of being 1 - (1 - tiny).
    if t < 0.0 { tail / 2.0 } else { 1.0 - tail / 2.0 }
}

/// The density of Student's t with `df` degrees of freedom at `t`.
pub fn student_t_pdf(t: f64, df: f64) -> f64 {
    if !valid_df(df) {
        return f64::NAN;
    }
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * PI).ln()
        - (df + 1.0) / 2.0 * (t * t / df).ln_1p();
    ln.exp()
}

/// The t with P(T <= t) = p, the inverse of [`student_t_cdf`], to about
/// 1e-15 relative; ±∞ at p = 0 and 1, NaN outside [0, 1] or for an invalid
/// `df`.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) || !valid_df(df) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Solving for the smaller tail keeps its relative precision, which is
    // what fixes a quantile like t_{0.975} (1 - 0.975 is the number that
    // matters).
    if p < 0.5 { -upper_quantile(p, df) } else { upper_quantile(1.0 - p, df) }
}

/// ln Γ(x) for x > 0 (NaN otherwise), by the Lanczos approximation
/// (g = 7, nine terms), accurate to about 1e-15 relative in Γ.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.9999999999998099,
        676.5203681218851,
        -1259.1392167224028,
        771.3234287776531,
        -176.6150291621406,
        12.507343278686905,
        -0.13857109526572012,
        9.984369578019572e-6,
        1.5056327351493116e-7,
    ];
    const HALF_LN_TWO_PI: f64 = 0.9189385332046727;

    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        // The series is only accurate for x >= 1/2; the reflection formula
        // Γ(x) Γ(1 - x) = π / sin(πx) carries small x over.
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let series =
        COEFFICIENTS[1..].iter().zip(1u32..).fold(COEFFICIENTS[0], |sum, (&c, i)| sum + c / (x + f64::from(i)));
    let t = x + G + 0.5;
    HALF_LN_TWO_PI + (x + 0.5) * t.ln() - t + series.ln()
}

/// The regularized incomplete beta function I_x(a, b) for a, b > 0 and x in
/// [0, 1] (NaN otherwise).
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 || x.is_nan() || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    beta_reg(a, b, x, 1.0 - x)
}

/// I_x(a, b) with y = 1 - x given by the caller, who can often compute it
/// without the cancellation of 1 - x (near x = 1 that is all the precision
/// of the result).
pub(super) fn beta_reg(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * y.ln() - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b))).exp();
    // The continued fraction converges fast only left of the mean of the
    // beta distribution; right of it, the symmetry I_x(a, b) = 1 - I_y(b, a)
    // swaps sides.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, y) / b
    }
}

/// The continued fraction of I_x(a, b) (without its front factor
/// x^a y^b / (a B(a, b))), evaluated by the modified Lentz method.
pub(super) fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    // Enough for a, b up to about 1e7: the number of terms needed grows as
    // the square root of max(a, b).
    const MAX_TERMS: u32 = 10_000;
    // Lentz's method divides by partial results that can be exactly 0;
    // nudging them to a tiny value instead costs no precision.
    fn nonzero(v: f64) -> f64 {
        if v.abs() < 1e-300 { 1e-300 } else { v }
    }

    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - (a + b) * x / (a + 1.0));
    let mut fraction = d;
    for m in 1..=MAX_TERMS {
        let m = f64::from(m);
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / nonzero(1.0 + even * d);
        c = nonzero(1.0 + even / c);
        fraction *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / nonzero(1.0 + odd * d);
        c = nonzero(1.0 + odd / c);
        let delta = d * c;
        fraction *= delta;
        if (delta - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    fraction
}

/// Degrees of freedom the functions here accept. Infinite df (the normal
/// distribution) is refused rather than approximated: no table needs it.
pub(super) fn valid_df(df: f64) -> bool {
    df.is_finite() && df > 0.0
}

/// P(|T| >= |t|), the two-sided p-value of t.
pub(super) fn two_sided_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() || !valid_df(df) {
        return f64::NAN;
    }
    // P(|T| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t²). Both x and
    // 1 - x are formed from a ratio at most 1, so neither overflows for huge
    // |t| nor loses the small one of the pair to cancellation.
    let s = t.abs() / df.sqrt();
    let (x, y) = if s <= 1.0 {
        let s2 = s * s;
        (1.0 / (1.0 + s2), s2 / (1.0 + s2))
    } else {
        let r2 = (1.0 / s).powi(2);
        (r2 / (1.0 + r2), 1.0 / (1.0 + r2))
    };
    beta_reg(df / 2.0, 0.5, x, y)
}

/// The t >= 0 with P(T > t) = q, for 0 < q < 1/2.
pub(super) fn upper_quantile(q: f64, df: f64) -> f64 {
    let upper = |t: f64| two_sided_tail(t, df) / 2.0;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while upper(hi) > q {
        lo = hi;
        hi *= 2.0;
        if hi.is_infinite() {
            // Heavy tails (df well below 1) can put the quantile past the
            // largest float.
            return f64::INFINITY;
        }
    }
    // Newton's method on ln P(T > t) - ln q, which is close to linear in
    // the tails (P(T > t) falls like a power of t there) where Newton on
    // P(T > t) itself overshoots; kept inside the bracket [lo, hi] by
    // bisection whenever a step would leave it.
    let mut t = hi;
    for _ in 0..500 {
        let u = upper(t);
        if u == q {
            return t;
        }
        if u > q {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + (u.ln() - q.ln()) * u / student_t_pdf(t, df);
        if (newton - t).abs() <= 4.0 * f64::EPSILON * t {
            return newton;
        }
        let inside = newton > lo && newton < hi;
        t = if inside {
            newton
        } else if lo > 0.0 && hi > 4.0 * lo {
            // Geometric bisection when the bracket spans orders of
            // magnitude, as it does after the doubling search.
            (lo * hi).sqrt()
        } else {
            0.5 * (lo + hi)
        };
        if hi - lo <= 4.0 * f64::EPSILON * hi {
            return t;
        }
    }
    t
}
