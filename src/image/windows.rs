//! The only `unsafe` code of rdprescue: two thin calls into the Windows API
//! that the standard library does not offer, `DeviceIoControl` and the volume
//! enumeration (`FindFirstVolumeW`/`FindNextVolumeW`).
//!
//! Why unsafe is needed: both are foreign functions that take raw pointers
//! and lengths. Each call below passes pointers to live Rust buffers together
//! with their exact lengths, and a handle borrowed from an open `File`, so the
//! callee never writes outside memory we own. Everything else — opening
//! devices (std `OpenOptions`), reading (`seek_read`), parsing what the
//! IOCTLs return, deciding what to do — is safe code in
//! [`super::device`] and `repair::device`, tested on Linux.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::windows::io::AsRawHandle;
use windows_sys::Win32::Foundation::{GetLastError, ERROR_NO_MORE_FILES, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{FindFirstVolumeW, FindNextVolumeW, FindVolumeClose};
use windows_sys::Win32::System::IO::DeviceIoControl;

/// `DeviceIoControl(file, code, input, out)` without overlapped I/O: the
/// number of bytes the driver wrote into `out`.
pub fn ioctl(file: &File, code: u32, input: &[u8], out: &mut [u8]) -> io::Result<usize> {
    let mut returned: u32 = 0;
    let in_len = u32::try_from(input.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let out_len = u32::try_from(out.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let in_ptr = if input.is_empty() { std::ptr::null() } else { input.as_ptr().cast() };
    let out_ptr = if out.is_empty() { std::ptr::null_mut() } else { out.as_mut_ptr().cast() };
    // SAFETY: the handle is valid while `file` is borrowed; both buffers are
    // live for the call and their lengths are passed exactly; `returned` is
    // a valid u32; no OVERLAPPED (synchronous call).
    let ok = unsafe { DeviceIoControl(file.as_raw_handle(), code, in_ptr, in_len, out_ptr, out_len, &mut returned, std::ptr::null_mut()) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((returned as usize).min(out.len()))
}

/// Every volume's GUID path (`\\?\Volume{...}\`), as `FindFirstVolumeW`
/// lists them.
pub fn volume_names() -> io::Result<Vec<String>> {
    const LEN: usize = 1024;
    let mut buf = [0u16; LEN];
    // SAFETY: `buf` is live and its length in u16 units is passed.
    let find = unsafe { FindFirstVolumeW(buf.as_mut_ptr(), LEN as u32) };
    if find == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    loop {
        out.push(super::device::wide_to_string(&buf));
        buf = [0u16; LEN];
        // SAFETY: `find` is the open search handle; `buf` as above.
        if unsafe { FindNextVolumeW(find, buf.as_mut_ptr(), LEN as u32) } == 0 {
            // SAFETY: no arguments.
            let code = unsafe { GetLastError() };
            // SAFETY: `find` is open and closed exactly once.
            unsafe { FindVolumeClose(find) };
            if code == ERROR_NO_MORE_FILES {
                return Ok(out);
            }
            return Err(io::Error::from_raw_os_error(code as i32));
        }
        if out.len() > 4096 {
            // SAFETY: as above.
            unsafe { FindVolumeClose(find) };
            return Ok(out);
        }
    }
}
