/*
 * A stand-in bcryptprimitives.dll for Wine 8.0, which lacks it: Go 1.26's
 * runtime on windows takes its random bytes from ProcessPrng in this DLL
 * and will not start without it. ProcessPrng fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. The e2e
 * tests build it with x86_64-w64-mingw32-gcc into a fresh Wine prefix's
 * system32; it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
