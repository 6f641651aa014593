//! The one `Emotion` enum: class names, order and count for the whole program.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The seven FER2013 expressions, in the alphabetical order image-folder loaders use.
/// The discriminant is the class index used by every model and tensor in ferrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    Angry = 0,
    Disgust = 1,
    Fear = 2,
    Happy = 3,
    Neutral = 4,
    Sad = 5,
    Surprise = 6,
}

impl Emotion {
    /// Number of classes.
    pub const COUNT: usize = 7;
    /// All classes in index order.
    pub const ALL: [Emotion; Emotion::COUNT] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::Sad,
        Emotion::Surprise,
    ];

    /// Class index (0..COUNT).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class with this index, if any.
    pub fn from_index(i: usize) -> Option<Emotion> {
        Emotion::ALL.get(i).copied()
    }

    /// Lower-case name, also the image-folder name of the class.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Neutral => "neutral",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
        }
    }

    /// Map the original FER2013 CSV label number (0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad
    /// 5=Surprise 6=Neutral) to the class.
    pub fn from_csv_label(n: u32) -> Option<Emotion> {
        Some(match n {
            0 => Emotion::Angry,
            1 => Emotion::Disgust,
            2 => Emotion::Fear,
            3 => Emotion::Happy,
            4 => Emotion::Sad,
            5 => Emotion::Surprise,
            6 => Emotion::Neutral,
            _ => return None,
        })
    }

    /// The original FER2013 CSV label number of this class.
    pub fn csv_label(self) -> u32 {
        match self {
            Emotion::Angry => 0,
            Emotion::Disgust => 1,
            Emotion::Fear => 2,
            Emotion::Happy => 3,
            Emotion::Sad => 4,
            Emotion::Surprise => 5,
            Emotion::Neutral => 6,
        }
    }

    /// A distinct RGB colour per class, for plots and drawings.
    pub fn color(self) -> [u8; 3] {
        match self {
            Emotion::Angry => [220, 40, 40],
            Emotion::Disgust => [120, 160, 30],
            Emotion::Fear => [150, 70, 200],
            Emotion::Happy => [250, 190, 20],
            Emotion::Neutral => [140, 140, 140],
            Emotion::Sad => [40, 100, 220],
            Emotion::Surprise => [250, 120, 20],
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Emotion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Emotion::ALL
            .into_iter()
            .find(|e| e.name() == lower)
            .ok_or_else(|| {
                format!(
                    "unknown emotion '{s}' (expected one of: {})",
                    Emotion::ALL.map(|e| e.name()).join(", ")
                )
            })
    }
}

/// Index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_names_round_trip() {
        for (i, e) in Emotion::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Emotion::from_index(i), Some(*e));
            assert_eq!(e.name().parse::<Emotion>().unwrap(), *e);
        }
        assert_eq!(Emotion::from_index(7), None);
        assert!("joy".parse::<Emotion>().is_err());
    }

    #[test]
    fn csv_labels_follow_the_original_numbering() {
        assert_eq!(Emotion::from_csv_label(4), Some(Emotion::Sad));
        assert_eq!(Emotion::from_csv_label(6), Some(Emotion::Neutral));
        assert_eq!(Emotion::from_csv_label(7), None);
        for e in Emotion::ALL {
            assert_eq!(Emotion::from_csv_label(e.csv_label()), Some(e));
        }
    }
}
