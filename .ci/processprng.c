/* Test tooling, not part of rdprescue: a stand-in bcryptprimitives.dll for
 * running the Windows test binaries under Debian's wine 8, which lacks it.
 * Rust's standard library (1.78+) imports ProcessPrng from it for its hash
 * seeds, so without it every Rust .exe dies at load (status c0000135).
 * ProcessPrng fills the buffer from advapi32's SystemFunction036
 * (RtlGenRandom), which wine has. Built by .ci/run with mingw-w64 into the
 * wine prefix's system32; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
