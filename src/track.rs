//! Tracking faces across video frames: stable ids by box overlap, smoothed probabilities.

use crate::detect::BBox;
use crate::emotion::Emotion;
use serde::{Deserialize, Serialize};

/// How faces are matched and smoothed over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Smallest box overlap (IoU) that continues a track.
    pub min_iou: f32,
    /// Frames a track survives without a matching face (e.g. a short occlusion).
    pub max_missed: usize,
    /// Exponential smoothing of probabilities: the weight of the previous value, in [0, 1)
    /// (0 = no smoothing).
    pub smoothing: f32,
    /// Label hysteresis: a track's shown label moves to another class only when that class's
    /// smoothed probability beats the shown one's by more than this (0 = always the top class).
    #[serde(default)]
    pub hysteresis: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.25,
            max_missed: 30,
            smoothing: 0.6,
            hysteresis: 0.15,
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
    /// The class shown for this track (the top smoothed class, held by the hysteresis).
    #[serde(default)]
    pub label: Option<Emotion>,
}

impl Track {
    /// Move the shown label to the top smoothed class if it beats the shown one by more than
    /// `hysteresis`.
    fn relabel(&mut self, hysteresis: f32) {
        let top = crate::evaluate::argmax(&self.probs);
        self.label = match self.label {
            Some(l) if self.probs[top] - self.probs[l.index()] <= hysteresis => Some(l),
            _ => Some(Emotion::ALL[top]),
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

    /// The label shown for track `id` (see `TrackerConfig::hysteresis`).
    pub fn label(&self, id: u32) -> Option<Emotion> {
        self.tracks.iter().find(|t| t.id == id).and_then(|t| t.label)
    }

    /// Live tracks (matched in the last update or missing for at most `max_missed` updates).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Match this frame's faces (box, raw probabilities) to tracks. Returns, per face, its
    /// track id and smoothed probabilities. Unmatched faces start new tracks; tracks unmatched
    /// for more than `max_missed` updates end.
    pub fn update(&mut self, faces: &[(BBox, [f32; Emotion::COUNT])]) -> Vec<(u32, [f32; Emotion::COUNT])> {
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
        let a = self.cfg.smoothing.clamp(0.0, 0.999);
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
                    t.relabel(self.cfg.hysteresis);
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
                    t.relabel(self.cfg.hysteresis);
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
            smoothing: 0.0,
            ..Default::default()
        });
        let a = |x: f32| BBox::new(x, 10.0, 40.0, 40.0);
        let b = |x: f32| BBox::new(x, 200.0, 60.0, 60.0);
        let ids = t.update(&[(a(0.0), p(0)), (b(300.0), p(1))]);
        let (ia, ib) = (ids[0].0, ids[1].0);
        assert_ne!(ia, ib);
        // Both move a little; order of faces swapped.
        let ids = t.update(&[(b(305.0), p(1)), (a(6.0), p(0))]);
        assert_eq!((ids[0].0, ids[1].0), (ib, ia));
        // Face a is hidden for 3 frames while b keeps moving.
        for k in 0..3 {
            let ids = t.update(&[(b(310.0 + k as f32 * 5.0), p(1))]);
            assert_eq!(ids[0].0, ib);
        }
        // a reappears a bit further on: same id. A new face gets a new id.
        let ids = t.update(&[(a(20.0), p(0)), (b(325.0), p(1)), (BBox::new(500.0, 400.0, 30.0, 30.0), p(2))]);
        assert_eq!(ids[0].0, ia);
        assert_eq!(ids[1].0, ib);
        assert!(ids[2].0 != ia && ids[2].0 != ib);
    }

    /// Label changes per frame over a noisy sequence: scores hovering between two classes (a
    /// talking face) and a real change (happy -> sad at frame 60 of 30 fps).
    fn label_changes(hysteresis: f32, smoothing: f32) -> (usize, Option<usize>) {
        let mut t = Tracker::new(TrackerConfig { hysteresis, smoothing, ..Default::default() });
        let bx = BBox::new(0.0, 0.0, 50.0, 50.0);
        let (mut changes, mut last, mut switched_at) = (0, None, None);
        for f in 0..120usize {
            let mut v = [0.02f32; Emotion::COUNT];
            // Before the step: happy ~0.45 vs surprise ~0.40, the lead flipping every other
            // frame by a pseudo-random wobble; after: sad 0.8.
            let wobble = ((f * 7919 % 13) as f32 / 13.0 - 0.5) * 0.2;
            if f < 60 {
                v[Emotion::Happy.index()] = 0.45 + wobble;
                v[Emotion::Surprise.index()] = 0.40 - wobble;
            } else {
                v[Emotion::Sad.index()] = 0.8;
            }
            let id = t.update(&[(bx, v)])[0].0;
            let label = t.label(id);
            if last.is_some() && label != last {
                changes += 1;
                if label == Some(Emotion::Sad) && switched_at.is_none() {
                    switched_at = Some(f);
                }
            }
            last = label;
        }
        (changes, switched_at.map(|f| f - 60))
    }

    /// The smoothing's lag on a synthetic step: the default hysteresis and smoothing follow a
    /// real change within 0.5 s (15 frames at 30 fps) and stop the flicker of a face whose top
    /// two classes trade places.
    #[test]
    fn hysteresis_stops_flicker_and_follows_a_step_within_half_a_second() {
        let d = TrackerConfig::default();
        let (raw_changes, raw_lag) = label_changes(0.0, 0.0);
        let (changes, lag) = label_changes(d.hysteresis, d.smoothing);
        eprintln!("label changes: {raw_changes} unsmoothed, {changes} with the defaults; lag {raw_lag:?} vs {lag:?} frames");
        assert!(raw_changes >= 10, "the synthetic face flickers without smoothing: {raw_changes}");
        assert_eq!(changes, 1, "only the real change shows");
        assert!(lag.is_some_and(|l| l <= 15), "lag {lag:?} frames");
    }

    #[test]
    fn tracks_end_after_max_missed_and_probabilities_are_smoothed() {
        let mut t = Tracker::new(TrackerConfig {
            max_missed: 2,
            smoothing: 0.5,
            ..Default::default()
        });
        let bx = BBox::new(0.0, 0.0, 50.0, 50.0);
        let first = t.update(&[(bx, p(3))])[0].0;
        let (_, probs) = t.update(&[(bx, p(4))])[0];
        assert_eq!(probs[3], 0.5);
        assert_eq!(probs[4], 0.5);
        for _ in 0..3 {
            t.update(&[]);
        }
        assert!(t.tracks().is_empty());
        assert_ne!(t.update(&[(bx, p(3))])[0].0, first);
    }
}
