//! Marvin32, the keyed hash that protects HvLE log entries (formats.md B.2).

/// The seed Windows uses for HvLE Hash-1 and Hash-2 (bytes 82 EF 4D 88 7A 4E 55 C5).
pub const HVLE_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

#[inline]
fn block(s0: &mut u32, s1: &mut u32) {
    *s1 ^= *s0;
    *s0 = s0.rotate_left(20).wrapping_add(*s1);
    *s1 = s1.rotate_left(9) ^ *s0;
    *s0 = s0.rotate_left(27).wrapping_add(*s1);
    *s1 = s1.rotate_left(19);
}

/// Marvin32 of `data` with `seed`; the result is `(s1 << 32) | s0`.
pub fn marvin32(seed: u64, data: &[u8]) -> u64 {
    let mut m = Marvin32::new(seed);
    m.update(data);
    m.finish()
}

/// Marvin32 over data given in pieces (an HvLE entry read through a small
/// buffer): the same result as [`marvin32`] over the pieces joined.
#[derive(Debug, Clone)]
pub struct Marvin32 {
    s0: u32,
    s1: u32,
    /// Bytes of an incomplete 4-byte word carried to the next piece.
    tail: [u8; 4],
    ntail: usize,
}

impl Marvin32 {
    pub fn new(seed: u64) -> Self {
        Marvin32 { s0: seed as u32, s1: (seed >> 32) as u32, tail: [0; 4], ntail: 0 }
    }

    fn word(&mut self, w: [u8; 4]) {
        self.s0 = self.s0.wrapping_add(u32::from_le_bytes(w));
        block(&mut self.s0, &mut self.s1);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if self.ntail > 0 {
            let n = (4 - self.ntail).min(data.len());
            self.tail[self.ntail..self.ntail + n].copy_from_slice(&data[..n]);
            self.ntail += n;
            data = &data[n..];
            if self.ntail < 4 {
                return;
            }
            self.word(self.tail);
            self.ntail = 0;
        }
        let mut words = data.chunks_exact(4);
        // The state in locals for the long loop (registers, not memory).
        let (mut s0, mut s1) = (self.s0, self.s1);
        for w in &mut words {
            s0 = s0.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            block(&mut s0, &mut s1);
        }
        (self.s0, self.s1) = (s0, s1);
        let r = words.remainder();
        self.tail[..r.len()].copy_from_slice(r);
        self.ntail = r.len();
    }

    pub fn finish(mut self) -> u64 {
        let t = self.tail;
        let final_word = match self.ntail {
            1 => 0x8000 | t[0] as u32,
            2 => 0x80_0000 | u16::from_le_bytes([t[0], t[1]]) as u32,
            3 => 0x8000_0000 | (t[2] as u32) << 16 | u16::from_le_bytes([t[0], t[1]]) as u32,
            _ => 0x80,
        };
        self.s0 = self.s0.wrapping_add(final_word);
        block(&mut self.s0, &mut self.s1);
        block(&mut self.s0, &mut self.s1);
        ((self.s1 as u64) << 32) | self.s0 as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// formats.md B.2: regf-samples `8.1-unreconciled/after/SYSTEM.LOG1`, entry at 512
    /// (seq 206). Hash-2 covers the first 32 bytes of the entry, which embed Hash-1.
    #[test]
    fn hvle_hash2_vector_from_windows_log() {
        let head = unhex("48764c4500fe0d0001000000ce0000000070710063000000d8a11558b1d9b41e");
        assert_eq!(u64::from_le_bytes(head[24..32].try_into().unwrap()), 0x1eb4d9b15815a1d8); // Hash-1
        assert_eq!(marvin32(HVLE_SEED, &head), 0x25e9d97845ea56f2);
    }

    /// The published test vectors of .NET's Marvin implementation (every tail length).
    #[test]
    fn dotnet_vectors() {
        const S1: u64 = 0x004F_B61A_001B_DBCC;
        const S2: u64 = 0x804F_B61A_001B_DBCC;
        const S3: u64 = 0x804F_B61A_801B_DBCC;
        let cases: &[(u64, &str, u64)] = &[
            (S1, "", 0x30ED35C100CD3C7D),
            (S1, "af", 0x48E73FC77D75DDC1),
            (S1, "e70f", 0xB5F6E1FC485DBFF8),
            (S1, "37f495", 0xF0B07C789B8CF7E8),
            (S1, "8642dc59", 0x7008F2E87E9CF556),
            (S1, "153fb79826", 0xE6C08C6DA2AFA997),
            (S1, "0932e6246c47", 0x6F04BF1A5EA24060),
            (S1, "ab427ea8d10fc7", 0xE11847E4F0678C41),
            (S2, "", 0x10A9D5D3996FD65D),
            (S2, "af", 0x68201F91960EBF91),
            (S2, "e70f", 0x64B581631F6AB378),
            (S2, "37f495", 0xE1F2DFA6E5131408),
            (S2, "8642dc59", 0x36289D9654FB49F6),
            (S2, "153fb79826", 0x0A06114B13464DBD),
            (S2, "0932e6246c47", 0xD6DD5E40AD1BC2ED),
            (S2, "ab427ea8d10fc7", 0xE203987DBA252FB3),
            (S3, "00", 0xA37FB0DA2ECAE06C),
            (S3, "FF", 0xFECEF370701AE054),
            (S3, "00FF", 0xA638E75700048880),
            (S3, "FF00", 0xBDFB46D969730E2A),
            (S3, "FF00FF", 0x9D8577C0FE0D30BF),
            (S3, "00FF00", 0x4F9FBDDE15099497),
            (S3, "00FF00FF", 0x24EAA279D9A529CA),
            (S3, "FF00FF00", 0xD3BEC7726B057943),
            (S3, "FF00FF00FF", 0x920B62BBCA3E0B72),
            (S3, "00FF00FF00", 0x1D7DDF9DFDF3C1BF),
            (S3, "00FF00FF00FF", 0xEC21276A17E821A5),
            (S3, "FF00FF00FF00", 0x6911A53CA8C12254),
            (S3, "FF00FF00FF00FF", 0xFDFD187B1D3CE784),
            (S3, "00FF00FF00FF00", 0x71876F2EFB1B0EE8),
        ];
        for &(seed, data, want) in cases {
            assert_eq!(marvin32(seed, &unhex(data)), want, "seed {seed:#x} data {data}");
        }
    }

    /// Any split of the data into pieces gives the one-shot hash.
    #[test]
    fn pieces_hash_like_the_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1000] {
            let want = marvin32(HVLE_SEED, &data[..len]);
            for step in [1, 2, 3, 5, 7, 64, 999] {
                let mut m = Marvin32::new(HVLE_SEED);
                for c in data[..len].chunks(step) {
                    m.update(c);
                    m.update(&[]);
                }
                assert_eq!(m.finish(), want, "len {len} step {step}");
            }
        }
    }
}
