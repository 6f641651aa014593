//! Faces in photos and video: detection ([`blazeface`] runs BlazeFace and [`yunet`]; boxes and
//! crops in [`detect`]), the analyzer that labels every face ([`analyzer`]), ids and smoothing
//! across frames ([`track`]), ffmpeg frames in and out ([`video`]; frames go out with their times
//! in a Matroska stream, `matroska`) and drawing the results ([`annotate`]).

pub mod analyzer;
pub mod annotate;
pub mod blazeface;
pub mod yunet;
pub mod builder;
pub mod detect;
pub mod track;
#[cfg(feature = "video")]
mod matroska;
#[cfg(feature = "video")]
pub mod video;
