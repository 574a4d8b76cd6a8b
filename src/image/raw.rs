//! Raw images and block devices: the virtual disk is the file.

use super::{ContainerInfo, Disk, FileSource, Format, Image};
use crate::error::{Error, Layer, Result};

pub struct RawDisk {
    src: FileSource,
}

impl Disk for RawDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.src.len()) {
            return Err(Error::corrupt(Layer::Raw, offset, "read past end of disk"));
        }
        self.src.read_at(Layer::Raw, offset, buf)
    }
    fn len(&self) -> u64 {
        self.src.len()
    }
    fn sector_size(&self) -> u32 {
        512
    }
}

pub fn open(src: FileSource) -> Result<Image> {
    let info = ContainerInfo {
        path: src.path().to_path_buf(),
        format: Format::Raw,
        file_size: src.len(),
        virtual_size: src.len(),
        logical_sector_size: 512,
        physical_sector_size: 512,
        block_size: None,
        disk_id: None,
        creator: None,
        log_replayed: None,
        allocated_blocks: None,
        parent: None,
    };
    Ok(Image { disk: std::sync::Arc::new(RawDisk { src }), info })
}
