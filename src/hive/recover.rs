//! Base-block validation, dirty detection and transaction-log recovery.
//! (Being written.)

use super::LoadedHive;
use crate::error::{Error, Layer, Result};

/// Load a hive from its primary file and optional .LOG1 / .LOG2 contents.
pub fn load(primary: Vec<u8>, log1: Option<Vec<u8>>, log2: Option<Vec<u8>>) -> Result<LoadedHive> {
    let _ = (primary, log1, log2);
    Err(Error::unsupported(Layer::Hive, 0, "hive loading not yet implemented"))
}
