//! Percentiles of one run and medians over rounds.

/// Request latencies in microseconds.
#[derive(Debug, Default)]
pub struct Latencies {
    micros: Vec<u32>,
    sorted: bool,
}

impl Latencies {
    /// Adds samples.
    pub fn extend(&mut self, micros: impl IntoIterator<Item = u32>) {
        self.micros.extend(micros);
        self.sorted = false;
    }

    /// The number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The `p`-th percentile (0 to 100), nearest-rank; `None` without samples.
    pub fn percentile(&mut self, p: f64) -> Option<u32> {
        if self.micros.is_empty() {
            return None;
        }
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
        let rank = (p / 100.0 * self.micros.len() as f64).ceil() as usize;
        Some(self.micros[rank.clamp(1, self.micros.len()) - 1])
    }
}

/// The median of `values`, the mean of the middle two for an even count;
/// `None` when empty. NaNs are not expected and sort last.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        f64::midpoint(sorted[middle - 1], sorted[middle])
    })
}

/// The lowest and the highest of `values`: how far apart rounds fell;
/// `None` when empty.
#[must_use]
pub fn range(values: &[f64]) -> Option<(f64, f64)> {
    let low = values.iter().copied().min_by(f64::total_cmp)?;
    let high = values.iter().copied().max_by(f64::total_cmp)?;
    Some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut latencies = Latencies::default();
        latencies.extend((1..=100).rev());
        assert_eq!(latencies.percentile(50.0), Some(50));
        assert_eq!(latencies.percentile(99.0), Some(99));
        assert_eq!(latencies.percentile(100.0), Some(100));
        assert_eq!(latencies.percentile(0.0), Some(1));
        assert_eq!(Latencies::default().percentile(50.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(range(&[0.9, 0.8, 1.1]), Some((0.8, 1.1)));
        assert_eq!(range(&[0.9]), Some((0.9, 0.9)));
        assert_eq!(range(&[]), None);
    }
}
