//! How much slower the machine runs now than when the time kept for the end of a run was
//! priced.
//!
//! The work after the last step is priced at the rate of the last measuring pass, which
//! may be half a minute old when the steps stop. A program that starts beside the run in
//! that time slows the end down as much as the steps, and the run overshoots its budget.
//! The steps see it first: each one's compute time per image pixel, against the same
//! figure just after the pricing, says how much longer the end will take now.

/// Steps after a pricing whose mean is the baseline.
const BASELINE_STEPS: usize = 3;
/// Weight of the newest step in the recent figure (a mean over about the last 3 steps).
const SMOOTHING: f64 = 0.3;

/// Step times per pixel: the baseline after the last pricing and the recent ones.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    baseline_sum: f64,
    baseline_steps: usize,
    recent: Option<f64>,
}

impl Pace {
    /// A new pricing: the next steps set the baseline again.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// One step took `secs` for `pixels` image pixels (batch × side²).
    pub fn record(&mut self, secs: f64, pixels: f64) {
        if !(secs.is_finite() && secs > 0.0 && pixels > 0.0) {
            return;
        }
        let per_pixel = secs / pixels;
        if self.baseline_steps < BASELINE_STEPS {
            self.baseline_sum += per_pixel;
            self.baseline_steps += 1;
        }
        self.recent = Some(match self.recent {
            Some(recent) => recent + SMOOTHING * (per_pixel - recent),
            None => per_pixel,
        });
    }

    /// How many times slower recent steps are than the baseline; never below 1 (a machine
    /// that got quieter leaves the reserve as priced), and 1 until the baseline is set.
    pub fn slowdown(&self) -> f64 {
        match (self.baseline_steps, self.recent) {
            (BASELINE_STEPS, Some(recent)) if self.baseline_sum > 0.0 => {
                (recent / (self.baseline_sum / BASELINE_STEPS as f64)).max(1.0)
            }
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_that_slow_down_after_the_pricing_grow_the_reserve_and_faster_ones_do_not() {
        let mut pace = Pace::default();
        assert_eq!(pace.slowdown(), 1.0, "no steps yet");
        for _ in 0..BASELINE_STEPS {
            pace.record(0.5, 1000.0);
        }
        assert_eq!(pace.slowdown(), 1.0);
        // Another program starts: steps take three times as long.
        for _ in 0..20 {
            pace.record(1.5, 1000.0);
        }
        assert!((pace.slowdown() - 3.0).abs() < 0.01, "{}", pace.slowdown());
        // Larger images (progressive resizing) at the same speed per pixel change nothing.
        pace.reset();
        for _ in 0..BASELINE_STEPS {
            pace.record(0.5, 1000.0);
        }
        for _ in 0..20 {
            pace.record(1.0, 2000.0);
        }
        assert!((pace.slowdown() - 1.0).abs() < 1e-9);
        // Quieter: the reserve stays as priced.
        for _ in 0..20 {
            pace.record(0.1, 1000.0);
        }
        assert_eq!(pace.slowdown(), 1.0);
        // Nonsense figures are ignored.
        pace.record(f64::NAN, 1000.0);
        pace.record(1.0, 0.0);
        assert_eq!(pace.slowdown(), 1.0);
    }
}
