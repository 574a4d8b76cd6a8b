//! The regf on-disk layout, declared once (formats.md A.1–A.6; the names
//! follow nt-hive's structures): base-block fields, hbin and cell headers,
//! and the fields of each record (nk, vk, sk, lf/lh/li/ri, db). Record field
//! offsets are relative to the cell *data*, i.e. after the 4-byte size.
//! Everything that reads or writes raw hive bytes (recover/, tree.rs, edit/)
//! takes its offsets from here.

/// The base block (the first 4096 bytes of a primary file; its first 512
/// bytes start every transaction log).
pub mod base {
    /// Length of a primary file's base block; hive-bins data follows it, and
    /// every cell offset is relative to this point.
    pub const LEN: usize = 4096;
    /// Length of the base-block copy at the start of a transaction log.
    pub const LOG_LEN: usize = 512;
    pub const SIGNATURE: &[u8; 4] = b"regf";
    pub const SEQ1: usize = 4;
    pub const SEQ2: usize = 8;
    /// Last written, FILETIME.
    pub const TIMESTAMP: usize = 12;
    pub const MAJOR: usize = 20;
    pub const MINOR: usize = 24;
    pub const FILE_TYPE: usize = 28;
    pub const FILE_FORMAT: usize = 32;
    /// Cell offset of the root key node.
    pub const ROOT: usize = 36;
    /// Size of the hive-bins data.
    pub const HBINS_SIZE: usize = 40;
    pub const CLUSTERING: usize = 44;
    pub const FLAGS: usize = 144;
    /// XOR-32 of the 127 dwords before it.
    pub const CHECKSUM: usize = 508;

    pub const FILE_TYPE_PRIMARY: u32 = 0;
    pub const FILE_TYPE_LOG_OLD: u32 = 1;
    pub const FILE_TYPE_LOG_W2K: u32 = 2;
    pub const FILE_TYPE_LOG_NEW: u32 = 6;
}

/// An hbin header (32 bytes); hbins tile the hive-bins data.
pub mod hbin {
    pub const SIGNATURE: &[u8; 4] = b"hbin";
    /// Its own offset from the start of the hive-bins data.
    pub const OFFSET: usize = 4;
    pub const SIZE: usize = 8;
    /// FILETIME; the first hbin's is a copy of the base block's.
    pub const TIMESTAMP: usize = 20;
    pub const HEADER_LEN: u32 = 32;
    /// hbin sizes (and the hive-bins size) are multiples of this.
    pub const ALIGN: u32 = 4096;
}

/// Cells: an i32 size (negative: allocated), then the data; 8-aligned.
pub mod cell {
    /// Length of the size field that precedes the data.
    pub const HEADER_LEN: usize = 4;
    /// "No cell" in an offset field.
    pub const NONE: u32 = u32::MAX;
    /// Largest value data one cell holds; beyond it a `db` record is used
    /// (hive version 1.4 and later).
    pub const MAX_DATA: usize = 16344;
}

/// Key node.
pub mod nk {
    pub const SIGNATURE: &[u8; 2] = b"nk";
    pub const FLAGS: usize = 2;
    pub const TIMESTAMP: usize = 4;
    pub const PARENT: usize = 16;
    pub const SUBKEY_COUNT: usize = 20;
    pub const VOLATILE_SUBKEY_COUNT: usize = 24;
    pub const SUBKEYS_LIST: usize = 28;
    pub const VOLATILE_SUBKEYS_LIST: usize = 32;
    pub const VALUE_COUNT: usize = 36;
    pub const VALUES_LIST: usize = 40;
    pub const SECURITY: usize = 44;
    pub const CLASS_NAME: usize = 48;
    /// Largest subkey name, in UTF-16 bytes (low 16 bits; the rest are flags).
    pub const MAX_SUBKEY_NAME: usize = 52;
    pub const MAX_SUBKEY_CLASS: usize = 56;
    pub const MAX_VALUE_NAME: usize = 60;
    pub const MAX_VALUE_DATA: usize = 64;
    pub const NAME_LEN: usize = 72;
    pub const CLASS_NAME_LEN: usize = 74;
    /// The name starts here (fixed part length).
    pub const NAME: usize = 76;

    pub const FLAG_VOLATILE: u16 = 0x01;
    pub const FLAG_HIVE_EXIT: u16 = 0x02;
    pub const FLAG_HIVE_ENTRY: u16 = 0x04;
    pub const FLAG_NO_DELETE: u16 = 0x08;
    pub const FLAG_SYM_LINK: u16 = 0x10;
    /// The name is Latin-1 ("compressed"), not UTF-16LE.
    pub const FLAG_COMP_NAME: u16 = 0x20;
}

/// Key value.
pub mod vk {
    pub const SIGNATURE: &[u8; 2] = b"vk";
    pub const NAME_LEN: usize = 2;
    pub const DATA_SIZE: usize = 4;
    pub const DATA_OFFSET: usize = 8;
    pub const TYPE: usize = 12;
    pub const FLAGS: usize = 16;
    pub const NAME: usize = 20;
    /// The name is Latin-1 ("compressed").
    pub const FLAG_COMP_NAME: u16 = 0x01;
    /// Data-size bit: the data (at most 4 bytes) is in the data-offset field.
    pub const DATA_INLINE: u32 = 0x8000_0000;
}

/// Security descriptor cell, in a doubly linked ring, reference counted.
pub mod sk {
    pub const SIGNATURE: &[u8; 2] = b"sk";
    pub const FLINK: usize = 4;
    pub const BLINK: usize = 8;
    pub const REFERENCES: usize = 12;
    pub const DESCRIPTOR_LEN: usize = 16;
    pub const DESCRIPTOR: usize = 20;
}

/// Subkey lists: leaves (li: offsets; lf: offset + name hint; lh: offset +
/// name hash) and the index root (ri: offsets of leaves).
pub mod list {
    pub const LI: &[u8; 2] = b"li";
    pub const LF: &[u8; 2] = b"lf";
    pub const LH: &[u8; 2] = b"lh";
    pub const RI: &[u8; 2] = b"ri";
    pub const COUNT: usize = 2;
    /// The first entry; entries are 4 bytes (li, ri) or 8 (lf, lh).
    pub const ENTRIES: usize = 4;
}

/// Big-data record: a segment count and the offset of a list of segments.
pub mod db {
    pub const SIGNATURE: &[u8; 2] = b"db";
    pub const SEGMENT_COUNT: usize = 2;
    pub const SEGMENT_LIST: usize = 4;
    /// Fixed part length.
    pub const LEN: usize = 8;
}

/// Registry value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    None = 0,
    Sz = 1,
    ExpandSz = 2,
    Binary = 3,
    Dword = 4,
    DwordBigEndian = 5,
    Link = 6,
    MultiSz = 7,
    ResourceList = 8,
    FullResourceDescriptor = 9,
    ResourceRequirementsList = 10,
    Qword = 11,
}

impl ValueType {
    pub const ALL: [ValueType; 12] = [
        ValueType::None,
        ValueType::Sz,
        ValueType::ExpandSz,
        ValueType::Binary,
        ValueType::Dword,
        ValueType::DwordBigEndian,
        ValueType::Link,
        ValueType::MultiSz,
        ValueType::ResourceList,
        ValueType::FullResourceDescriptor,
        ValueType::ResourceRequirementsList,
        ValueType::Qword,
    ];

    /// The type of a stored type number; `None` (the Rust one) for the
    /// nonstandard numbers above 11.
    pub fn from_u32(n: u32) -> Option<ValueType> {
        Self::ALL.get(n as usize).copied()
    }

    /// `REG_SZ`, ...
    pub fn name(self) -> &'static str {
        match self {
            ValueType::None => "REG_NONE",
            ValueType::Sz => "REG_SZ",
            ValueType::ExpandSz => "REG_EXPAND_SZ",
            ValueType::Binary => "REG_BINARY",
            ValueType::Dword => "REG_DWORD",
            ValueType::DwordBigEndian => "REG_DWORD_BIG_ENDIAN",
            ValueType::Link => "REG_LINK",
            ValueType::MultiSz => "REG_MULTI_SZ",
            ValueType::ResourceList => "REG_RESOURCE_LIST",
            ValueType::FullResourceDescriptor => "REG_FULL_RESOURCE_DESCRIPTOR",
            ValueType::ResourceRequirementsList => "REG_RESOURCE_REQUIREMENTS_LIST",
            ValueType::Qword => "REG_QWORD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_number_and_name() {
        for (i, t) in ValueType::ALL.iter().enumerate() {
            assert_eq!(*t as u32, i as u32);
            assert_eq!(ValueType::from_u32(i as u32), Some(*t));
            assert_eq!(t.name(), crate::hive::tree::TYPE_NAMES[i]);
        }
        assert_eq!(ValueType::from_u32(12), None);
    }
}
