/* sha256.h — SHA-256 (FIPS 180-4) of a buffer or a file.
 *
 * Support file for chapter 09: every score prints the SHA-256 of the
 * classifier file it used, so that two scores are known to be comparable
 * (the same role the Inception weights' hash plays for FID). */
#ifndef DDPM_SHA256_H
#define DDPM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "00_tensor.h"

void sha256(uint8_t digest[32], const void *data, size_t n);
void sha256_hex(char hex[65], const uint8_t digest[32]);
// The hex digest of a whole file; 0, or -1 with err naming the file.
int  sha256_file(const char *path, char hex[65], Error *err);

#endif
