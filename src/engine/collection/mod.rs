//! What Likeness finds across a whole collection of photos: near-duplicates, a map of
//! the photos by likeness, and photos that may be filed under the wrong class.

pub mod duplicates;
pub mod keeper;
pub mod map;
pub mod mislabels;
