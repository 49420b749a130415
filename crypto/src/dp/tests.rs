//! Tests of the DP mechanisms: parameter validation, calibration against
//! OpenDP's privacy map, and statistical checks of the noise with loose
//! bounds (each is many standard errors wide, so they essentially never
//! flake; no seed is fixed).

use serde::de::value::{Error as ValueError, F64Deserializer};
use serde::Deserialize;

use super::*;

type TestResult = Result<(), DpError>;

fn eps(v: f64) -> Result<PrivacyBudget, DpError> {
    Ok(PrivacyBudget::Epsilon(Epsilon::new(v)?))
}

fn rho(v: f64) -> Result<PrivacyBudget, DpError> {
    Ok(PrivacyBudget::Rho(Rho::new(v)?))
}

/// Noise samples (noisy - true) from `n` scalar releases of `truth`, plus
/// the release metadata (identical across calls).
fn noise_samples(
    n: usize,
    truth: i64,
    budget: PrivacyBudget,
) -> Result<(Vec<f64>, NoisyRelease), DpError> {
    let mut samples = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let r = release_integers(&[truth], 1, budget)?;
        assert_eq!(r.values.len(), 1);
        samples.push((r.values[0] - truth) as f64);
        last = Some(r);
    }
    Ok((samples, last.ok_or(DpError::Empty)?))
}

fn mean_and_variance(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// The samples' mean is near 0 and their variance within 20% of `variance`.
fn assert_centred_with_variance(xs: &[f64], variance: f64) {
    let (mean, var) = mean_and_variance(xs);
    assert!(mean.abs() < 0.5, "mean noise {mean}");
    assert!(
        (var - variance).abs() < 0.2 * variance,
        "variance {var} vs {variance}"
    );
}

fn coverage(xs: &[f64], half_width: f64) -> f64 {
    xs.iter().filter(|x| x.abs() <= half_width).count() as f64 / xs.len() as f64
}

fn assert_rel_eq(actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= tol * expected.abs(),
        "{actual} is not within {tol} (relative) of {expected}"
    );
}

#[test]
fn laplace_count_mean_and_variance() -> TestResult {
    // 2·scale² = 8 at scale 2; the discrete Laplace's true variance is 7.83.
    // 10,000 releases: the sample variance's standard error is ~0.18, so
    // ±20% (±1.6) is ~8 standard errors away; the mean's is ~0.03.
    let (xs, r) = noise_samples(10_000, 1000, eps(0.5)?)?;
    assert_rel_eq(r.scale, 2.0, 1e-12);
    assert_rel_eq(r.variance, 8.0, 1e-12);
    assert_centred_with_variance(&xs, r.variance);
    Ok(())
}

#[test]
fn gaussian_count_mean_and_variance() -> TestResult {
    // scale = 1 / sqrt(0.1) ≈ 3.16, scale² = 10; the sample variance's
    // standard error over 2,000 releases is ~0.32, ±20% is ±2.
    let (xs, r) = noise_samples(2_000, 1000, rho(0.05)?)?;
    assert_rel_eq(r.scale, 10f64.sqrt(), 1e-12);
    assert_rel_eq(r.variance, 10.0, 1e-12);
    assert_centred_with_variance(&xs, r.variance);
    Ok(())
}

#[test]
fn ci95_covers_about_95_percent() -> TestResult {
    // Scale 10 for both, so the discreteness barely matters (expected
    // coverage ~94.8% Laplace, ~94.9% Gaussian); the standard error over
    // 10,000 releases is ~0.22 points, and [92%, 98%] is >10 of them away.
    for budget in [eps(0.1)?, rho(0.005)?] {
        let (xs, r) = noise_samples(10_000, 1000, budget)?;
        assert_rel_eq(r.scale, 10.0, 1e-12);
        let c = coverage(&xs, r.ci95_half_width);
        assert!((0.92..=0.98).contains(&c), "{budget:?}: coverage {c}");
    }
    Ok(())
}

#[test]
fn ci95_formulas() -> TestResult {
    let l = release_integers(&[0], 1, eps(1.0)?)?;
    assert_rel_eq(l.ci95_half_width, 20f64.ln(), 1e-12);
    let g = release_integers(&[0], 1, rho(0.5)?)?;
    assert_rel_eq(g.ci95_half_width, 1.96, 1e-4);
    Ok(())
}

#[test]
fn mapped_loss_equals_budget() -> TestResult {
    // (budget, what it spends, what it must leave at zero)
    let epsilons = [1e-3, 0.1, 0.5, 1.0, 3.0, 10.0].map(|e| (eps(e), e, "epsilon"));
    let rhos = [1e-4, 0.005, 0.05, 0.5, 2.0].map(|p| (rho(p), p, "rho"));
    for (budget, asked, currency) in epsilons.into_iter().chain(rhos) {
        let budget = budget?;
        for s in [1, 3, 7, 1000] {
            let r = release_integers(&[5, 6, 7], s, budget)?;
            let (spent, other) = match currency {
                "epsilon" => (r.loss.epsilon, r.loss.rho),
                _ => (r.loss.rho, r.loss.epsilon),
            };
            assert!(
                (spent - asked).abs() <= 1e-9 * asked,
                "{currency} {asked}, s {s}: {:?}",
                r.loss
            );
            assert!(
                spent <= asked,
                "{currency} {asked}, s {s}: overspent {:?}",
                r.loss
            );
            assert_eq!(other, 0.0);
        }
    }
    Ok(())
}

#[test]
fn invalid_parameters_are_refused() {
    for v in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(Epsilon::new(v), Err(DpError::InvalidEpsilon), "epsilon {v}");
        assert_eq!(Rho::new(v), Err(DpError::InvalidRho), "rho {v}");
    }
    assert!(Epsilon::new(f64::MIN_POSITIVE).is_ok());
}

#[test]
fn deserialisation_validates() {
    let de = |v: f64| F64Deserializer::<ValueError>::new(v);
    assert_eq!(Epsilon::deserialize(de(0.5)).ok(), Epsilon::new(0.5).ok());
    assert!(Epsilon::deserialize(de(-1.0)).is_err());
    assert!(Epsilon::deserialize(de(f64::NAN)).is_err());
    assert!(Rho::deserialize(de(0.0)).is_err());
    assert!(Rho::deserialize(de(f64::INFINITY)).is_err());
}

#[test]
fn degenerate_inputs_are_refused() -> TestResult {
    assert_eq!(release_integers(&[], 1, eps(1.0)?), Err(DpError::Empty));
    assert_eq!(
        release_integers(&[1], 0, eps(1.0)?),
        Err(DpError::ZeroSensitivity)
    );
    assert_eq!(
        release_integers(&[1], 0, rho(1.0)?),
        Err(DpError::ZeroSensitivity)
    );
    assert!(matches!(
        release_integers(&[1], u64::MAX, eps(1.0)?),
        Err(DpError::Calibration(_))
    ));
    // A scale that overflows to infinity is refused by OpenDP before sampling.
    let tiny = eps(f64::MIN_POSITIVE)?;
    let huge = i64::MAX as u64;
    assert!(matches!(
        release_integers(&[1], huge, tiny),
        Err(DpError::Calibration(_))
    ));
    // A share that underflows stays positive, and cannot be spent.
    let smallest = eps(f64::from_bits(1))?.split(2);
    assert_eq!(smallest, eps(f64::from_bits(1))?);
    assert!(matches!(
        release_integers(&[1], 1, smallest),
        Err(DpError::Calibration(_))
    ));
    Ok(())
}

#[test]
fn vector_release_scale_accounts_for_sensitivity() -> TestResult {
    let truth: Vec<i64> = (0..12).map(|i| 100 * i).collect();
    // One unit may touch all 12 groups: L1 sensitivity 12, L2 sqrt(12) < 4.
    let l = release_integers(&truth, 12, eps(1.0)?)?;
    assert_eq!(l.values.len(), 12);
    assert_rel_eq(l.scale, 12.0, 1e-12);
    assert_rel_eq(l.variance, 2.0 * 144.0, 1e-12);
    assert!((l.loss.epsilon - 1.0).abs() <= 1e-9);

    let g = release_integers(&truth, 4, rho(0.5)?)?;
    assert_eq!(g.values.len(), 12);
    assert_rel_eq(g.scale, 4.0, 1e-12);
    assert!((g.loss.rho - 0.5).abs() <= 1e-9);

    // Noise is independent per value and wide: over 200 releases of 12
    // values the spread clearly reflects scale 12, not scale 1.
    let mut xs = Vec::new();
    for _ in 0..200 {
        let r = release_integers(&truth, 12, eps(1.0)?)?;
        xs.extend(r.values.iter().zip(&truth).map(|(v, t)| (v - t) as f64));
    }
    let (_, var) = mean_and_variance(&xs);
    assert!((var - 288.0).abs() < 0.25 * 288.0, "variance {var}");
    Ok(())
}

#[test]
fn split_halves_the_budget() -> TestResult {
    assert_eq!(eps(1.0)?.split(2), eps(0.5)?);
    assert_eq!(rho(0.2)?.split(2), rho(0.1)?);
    assert_eq!(eps(0.3)?.split(1), eps(0.3)?);
    assert_eq!(eps(0.3)?.split(0), eps(0.3)?);
    // A mean: two releases at half the budget compose back to the budget.
    let half = eps(0.8)?.split(2);
    let sum = release_integers(&[4200], 10, half)?;
    let count = release_integers(&[42], 1, half)?;
    let total = sum.loss.compose(count.loss);
    assert!((total.epsilon - 0.8).abs() <= 1e-9, "{total:?}");
    assert_eq!(total.rho, 0.0);
    Ok(())
}

#[test]
fn losses_compose_additively() {
    let a = PrivacyLoss {
        epsilon: 0.25,
        rho: 0.0,
        cost: 0.03125,
    };
    let b = PrivacyLoss {
        epsilon: 0.0,
        rho: 0.125,
        cost: 0.125,
    };
    assert_eq!(
        a.compose(b).compose(a),
        PrivacyLoss {
            epsilon: 0.5,
            rho: 0.125,
            cost: 0.1875,
        }
    );
    assert_eq!(PrivacyLoss::default().compose(a), a);
}

#[test]
fn every_release_costs_zcdp_rho_by_opendps_cast() -> Result<(), DpError> {
    // Laplace at epsilon 0.5: OpenDP's pureDP -> zCDP cast gives 0.5^2 / 2.
    let laplace = calibrate_integers(1, PrivacyBudget::Epsilon(Epsilon::new(0.5)?))?;
    assert!(
        (laplace.loss.cost - 0.125).abs() <= 1e-9,
        "{:?}",
        laplace.loss
    );
    assert!((pure_cost(laplace.loss.epsilon) - laplace.loss.cost).abs() <= 1e-12);
    assert!((epsilon_within(laplace.loss.cost) - laplace.loss.epsilon).abs() <= 1e-6);
    // Gaussian: the cost is its own rho.
    let gaussian = calibrate_integers(3, PrivacyBudget::Rho(Rho::new(0.02)?))?;
    assert_eq!(gaussian.loss.cost, gaussian.loss.rho);
    // One currency: both together cost the sum.
    let both = laplace.loss.compose(gaussian.loss);
    assert!((both.cost - (0.125 + gaussian.loss.rho)).abs() <= 1e-12);
    Ok(())
}

#[test]
fn a_total_cost_reads_as_approximate_dp() -> Result<(), DpError> {
    assert_eq!(approximate_dp(0.0, 1e-6)?, 0.0);
    let epsilon = approximate_dp(0.5, 1e-6)?;
    // Never worse than BS16 Proposition 1.3's rho + 2 sqrt(rho ln(1/delta)).
    let bs16 = 0.5 + 2.0 * (0.5_f64 * (1e6_f64).ln()).sqrt();
    assert!(
        epsilon > 0.5 && epsilon <= bs16 + 1e-9,
        "{epsilon} vs {bs16}"
    );
    // More spent, or a smaller delta, reads as a larger epsilon.
    assert!(approximate_dp(1.0, 1e-6)? > epsilon);
    assert!(approximate_dp(0.5, 1e-9)? > epsilon);
    Ok(())
}
