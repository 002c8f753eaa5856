//! Time spent in our own per-frame code (`logic` + `ui`), for the frame-time report.

use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct FrameStats {
    pub frames: usize,
    pub total: Duration,
    pub worst: Duration,
    pub over_50ms: usize,
}

impl FrameStats {
    /// Adds one frame's time.
    pub fn record(&mut self, spent: Duration) {
        self.frames += 1;
        self.total += spent;
        self.worst = self.worst.max(spent);
        self.over_50ms += usize::from(spent > Duration::from_millis(50));
    }

    /// One line: frames, mean, worst, frames over 50 ms.
    pub fn summary(&self) -> String {
        let mean_ms = self.total.as_secs_f64() * 1000.0 / self.frames.max(1) as f64;
        format!(
            "{} frames, mean {mean_ms:.2} ms, worst {:.2} ms, {} over 50 ms",
            self.frames,
            self.worst.as_secs_f64() * 1000.0,
            self.over_50ms
        )
    }
}
