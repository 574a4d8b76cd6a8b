//! placeholder, being written
use super::{FileSource, Image, OpenCtx};
use crate::error::{Error, Layer, Result};
pub fn open(_src: FileSource, _ctx: &mut OpenCtx) -> Result<Image> {
    Err(Error::unsupported(Layer::Raw, 0, "vhdx not yet implemented"))
}
