//! Writing vhd images (see [`super`]).

use super::{Patch, Progress};
use crate::error::{Error, Result};
use crate::image::Image;
use std::fs::File;
use std::path::Path;

pub fn full_copy(_image: &Image, _patch: &Patch, _out: &mut File, _progress: Progress) -> Result<()> {
    Err(Error::Usage("not implemented yet".into()))
}

pub fn diff_child(_image: &Image, _patch: &Patch, _out: &mut File, _out_path: &Path) -> Result<()> {
    Err(Error::Usage("not implemented yet".into()))
}
