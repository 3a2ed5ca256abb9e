/* check_main.c — one runner for every suite (tests/test_NN_name.c defines
 * suite_NN_name()); the Makefile lists them in build/suites.h. Exit status is
 * non-zero when any test fails; the last line is Check's own summary. */
#include <check.h>
#include <stdlib.h>

#include "00_tensor.h"

#define SUITE(fn) Suite *fn(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    gemm_set_threads(1);   // one thread pool: OpenMP splits the work, BLAS runs inside (chapter 00)
    SRunner *sr = srunner_create(NULL);
#define SUITE(fn) srunner_add_suite(sr, fn());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_ENV);   // CK_VERBOSITY=verbose lists every test (the grader reads that)
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
