//! Tracking faces across video frames: stable ids by box overlap, smoothed probabilities.

use crate::vision::detect::BBox;
use crate::emotion::Emotion;
use serde::{Deserialize, Serialize};

/// How faces are matched, smoothed and labelled over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Smallest box overlap (IoU) that continues a track.
    pub min_iou: f32,
    /// Frames a track survives without a matching face (e.g. a short occlusion).
    pub max_missed: usize,
    /// Time constant, in seconds, of the exponential average of each track's probabilities
    /// (0 = no smoothing). The same at any frame rate: an update `dt` seconds after the last one
    /// keeps `exp(-dt / smooth_seconds)` of the past.
    pub smooth_seconds: f32,
    /// Label hysteresis: a track's shown label moves to another class only when that class's
    /// smoothed probability beats the shown one's by more than this (0 = always the top class).
    /// The same margin, halved, holds a label against `abstain`: a labelled track turns
    /// `uncertain` only when its label's probability falls below `abstain - hysteresis / 2`.
    #[serde(default)]
    pub hysteresis: f32,
    /// A track whose top smoothed probability is below this is shown as uncertain (0 = never).
    #[serde(default)]
    pub abstain: f32,
}

impl TrackerConfig {
    /// Check the settings: `smooth_seconds` in [0, 5], `hysteresis` in [0, 0.5], `min_iou` and
    /// `abstain` in [0, 1].
    pub fn validate(&self) -> crate::Result<()> {
        let checks: [(&'static str, f32, f32); 4] =
            [("smooth_seconds", self.smooth_seconds, 5.0), ("hysteresis", self.hysteresis, 0.5), ("min_iou", self.min_iou, 1.0), ("abstain", self.abstain, 1.0)];
        for (name, v, hi) in checks {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(crate::Error::Setting { name, value: v.to_string(), expected: format!("a number in [0, {hi}]") });
            }
        }
        Ok(())
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.25,
            max_missed: 30,
            smooth_seconds: 0.3,
            hysteresis: 0.15,
            abstain: 0.0,
        }
    }
}

/// One person followed over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub id: u32,
    /// Last matched box.
    pub bbox: BBox,
    /// Smoothed class probabilities.
    pub probs: [f32; Emotion::COUNT],
    /// Consecutive updates without a match.
    pub missed: usize,
    /// Updates this track has been matched in.
    pub hits: usize,
    /// The class shown for this track (the top smoothed class, held by the hysteresis);
    /// `None` = uncertain.
    #[serde(default)]
    pub label: Option<Emotion>,
}

impl Track {
    /// Move the shown label to the top smoothed class if it beats the shown one by more than
    /// `hysteresis`; turn uncertain (or back) across `abstain`, with half that margin.
    fn relabel(&mut self, hysteresis: f32, abstain: f32) {
        let top = crate::emotion::argmax(&self.probs);
        let p_top = self.probs[top];
        self.label = match self.label {
            Some(l) if p_top - self.probs[l.index()] <= hysteresis && self.probs[l.index()] >= abstain - hysteresis / 2.0 => {
                Some(l)
            }
            _ if p_top >= abstain => Some(Emotion::ALL[top]),
            _ => None,
        };
    }
}

/// Greedy IoU tracker.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u32,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        Tracker {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// The label shown for track `id` (see `TrackerConfig::hysteresis`); `None` for uncertain
    /// or an unknown id.
    pub fn label(&self, id: u32) -> Option<Emotion> {
        self.tracks.iter().find(|t| t.id == id).and_then(|t| t.label)
    }

    /// End every track (a cut to another shot); ids keep counting up.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Live tracks (matched in the last update or missing for at most `max_missed` updates).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Match this frame's faces (box, raw probabilities) to tracks, `dt_s` seconds after the
    /// previous update. Returns, per face, its track id and smoothed probabilities. Unmatched
    /// faces start new tracks; tracks unmatched for more than `max_missed` updates end.
    pub fn update(&mut self, faces: &[(BBox, [f32; Emotion::COUNT])], dt_s: f32) -> Vec<(u32, [f32; Emotion::COUNT])> {
        // Candidate pairs, best first: overlap, or for a face that moved while unseen, nearness
        // of centres relative to the face size (weaker than any overlap match).
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (fi, (b, _)) in faces.iter().enumerate() {
                let iou = t.bbox.iou(b);
                if iou >= self.cfg.min_iou {
                    pairs.push((1.0 + iou, ti, fi));
                } else {
                    let (ax, ay) = t.bbox.center();
                    let (bx, by) = b.center();
                    let size = t.bbox.w.max(t.bbox.h).max(b.w.max(b.h)).max(1.0);
                    let d = ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt() / size;
                    let ratio = (t.bbox.area() / b.area().max(1e-6)).max(b.area() / t.bbox.area().max(1e-6));
                    if d < 0.75 && ratio < 2.5 {
                        pairs.push((1.0 - d, ti, fi));
                    }
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of_face: Vec<Option<usize>> = vec![None; faces.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, ti, fi) in pairs {
            if !taken[ti] && track_of_face[fi].is_none() {
                taken[ti] = true;
                track_of_face[fi] = Some(ti);
            }
        }
        for (ti, t) in self.tracks.iter_mut().enumerate() {
            if !taken[ti] {
                t.missed += 1;
            }
        }
        let a = if self.cfg.smooth_seconds > 0.0 && dt_s.is_finite() {
            (-dt_s.max(0.0) / self.cfg.smooth_seconds).exp()
        } else {
            0.0
        };
        let mut out = Vec::with_capacity(faces.len());
        for (fi, (b, p)) in faces.iter().enumerate() {
            match track_of_face[fi] {
                Some(ti) => {
                    let t = &mut self.tracks[ti];
                    t.bbox = *b;
                    t.missed = 0;
                    t.hits += 1;
                    for (s, v) in t.probs.iter_mut().zip(p) {
                        *s = a * *s + (1.0 - a) * v;
                    }
                    t.relabel(self.cfg.hysteresis, self.cfg.abstain);
                    out.push((t.id, t.probs));
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let mut t = Track {
                        id,
                        bbox: *b,
                        probs: *p,
                        missed: 0,
                        hits: 1,
                        label: None,
                    };
                    t.relabel(self.cfg.hysteresis, self.cfg.abstain);
                    self.tracks.push(t);
                    out.push((id, *p));
                }
            }
        }
        let max_missed = self.cfg.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: usize) -> [f32; Emotion::COUNT] {
        let mut v = [0.0; Emotion::COUNT];
        v[k] = 1.0;
        v
    }

    #[test]
    fn ids_survive_motion_and_a_short_occlusion() {
        let mut t = Tracker::new(TrackerConfig {
            max_missed: 5,
            smooth_seconds: 0.0,
            ..Default::default()
        });
        let a = |x: f32| BBox::new(x, 10.0, 40.0, 40.0);
        let b = |x: f32| BBox::new(x, 200.0, 60.0, 60.0);
        let ids = t.update(&[(a(0.0), p(0)), (b(300.0), p(1))], 0.04);
        let (ia, ib) = (ids[0].0, ids[1].0);
        assert_ne!(ia, ib);
        // Both move a little; order of faces swapped.
        let ids = t.update(&[(b(305.0), p(1)), (a(6.0), p(0))], 0.04);
        assert_eq!((ids[0].0, ids[1].0), (ib, ia));
        // Face a is hidden for 3 frames while b keeps moving.
        for k in 0..3 {
            let ids = t.update(&[(b(310.0 + k as f32 * 5.0), p(1))], 0.04);
            assert_eq!(ids[0].0, ib);
        }
        // a reappears a bit further on: same id. A new face gets a new id.
        let ids = t.update(&[(a(20.0), p(0)), (b(325.0), p(1)), (BBox::new(500.0, 400.0, 30.0, 30.0), p(2))], 0.04);
        assert_eq!(ids[0].0, ia);
        assert_eq!(ids[1].0, ib);
        assert!(ids[2].0 != ia && ids[2].0 != ib);
    }

    /// Label changes over a noisy 30 fps sequence: scores hovering between two classes (a
    /// talking face), then hovering around the abstain threshold, then a real change (to sad at
    /// frame 120). Returns (changes, frames from the step to the switch to sad).
    fn label_changes(cfg: TrackerConfig) -> (usize, Option<usize>) {
        let mut t = Tracker::new(cfg);
        let bx = BBox::new(0.0, 0.0, 50.0, 50.0);
        let (mut changes, mut last, mut switched_at) = (0, None, None);
        for f in 0..180usize {
            let mut v = [0.02f32; Emotion::COUNT];
            // A pseudo-random wobble of +-0.1 that changes sign every frame or two (happy
            // leads on the first frame).
            let wobble = (((f * 7919 + 6) % 13) as f32 / 13.0 - 0.5) * 0.2;
            if f < 60 {
                // Happy ~0.45 vs surprise ~0.40, the lead flipping.
                v[Emotion::Happy.index()] = 0.45 + wobble;
                v[Emotion::Surprise.index()] = 0.40 - wobble;
            } else if f < 120 {
                // Happy around the abstain threshold (0.4), the rest spread.
                v[Emotion::Happy.index()] = 0.41 + wobble * 0.5;
                v[Emotion::Neutral.index()] = 0.25;
                v[Emotion::Surprise.index()] = 0.25 - wobble * 0.5;
            } else {
                v[Emotion::Sad.index()] = 0.8;
            }
            let id = t.update(&[(bx, v)], 1.0 / 30.0)[0].0;
            let label = t.label(id);
            // Changes from frame 5 on (the first frames settle the label).
            if f > 5 && label != last {
                changes += 1;
                if label == Some(Emotion::Sad) && switched_at.is_none() {
                    switched_at = Some(f);
                }
            }
            last = label;
        }
        (changes, switched_at.map(|f| f - 120))
    }

    /// The smoothing's lag on a synthetic step: the default hysteresis and smoothing follow a
    /// real change within 0.5 s (15 frames at 30 fps) and stop the flicker of a face whose top
    /// two classes trade places or whose top class hovers at the abstain threshold.
    #[test]
    fn hysteresis_stops_flicker_and_follows_a_step_within_half_a_second() {
        let d = TrackerConfig { abstain: 0.4, ..Default::default() };
        let raw = TrackerConfig { smooth_seconds: 0.0, hysteresis: 0.0, ..d.clone() };
        let (raw_changes, raw_lag) = label_changes(raw);
        let (changes, lag) = label_changes(d);
        eprintln!("label changes: {raw_changes} unsmoothed, {changes} with the defaults; lag {raw_lag:?} vs {lag:?} frames");
        assert!(raw_changes >= 20, "the synthetic face flickers without smoothing: {raw_changes}");
        // Happy -> sad, possibly through uncertain while the old label fades and the new one rises.
        assert!(changes <= 2, "only the real change shows: {changes}");
        assert_eq!(raw_lag, Some(0));
        assert!(lag.is_some_and(|l| l <= 15), "lag {lag:?} frames");
    }

    /// The smoothing is set in seconds, so it is the same at any frame rate.
    #[test]
    fn smoothing_depends_on_time_not_on_frame_rate() {
        let bx = BBox::new(0.0, 0.0, 50.0, 50.0);
        let after_one_second = |fps: usize| {
            let mut t = Tracker::new(TrackerConfig { smooth_seconds: 0.3, ..Default::default() });
            t.update(&[(bx, p(3))], 0.0);
            let mut probs = [0.0; Emotion::COUNT];
            for _ in 0..fps {
                probs = t.update(&[(bx, p(4))], 1.0 / fps as f32)[0].1;
            }
            probs[4]
        };
        let (a, b) = (after_one_second(10), after_one_second(60));
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        assert!((a - (1.0 - (-1.0f32 / 0.3).exp())).abs() < 1e-4, "{a}");
    }

    #[test]
    fn tracks_end_after_max_missed_and_probabilities_are_smoothed() {
        let mut t = Tracker::new(TrackerConfig {
            max_missed: 2,
            // An update 1 s later keeps exp(-ln 2) = half of the past.
            smooth_seconds: 1.0 / std::f32::consts::LN_2,
            ..Default::default()
        });
        let bx = BBox::new(0.0, 0.0, 50.0, 50.0);
        let first = t.update(&[(bx, p(3))], 1.0)[0].0;
        let (_, probs) = t.update(&[(bx, p(4))], 1.0)[0];
        assert!((probs[3] - 0.5).abs() < 1e-6);
        assert!((probs[4] - 0.5).abs() < 1e-6);
        for _ in 0..3 {
            t.update(&[], 1.0);
        }
        assert!(t.tracks().is_empty());
        assert_ne!(t.update(&[(bx, p(3))], 1.0)[0].0, first);
    }
}
