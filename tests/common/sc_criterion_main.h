/* sc_criterion_main.h -- the entry points of a Criterion test that links SystemC
 * (tests/platform_sc/): include once, in the test's source.
 *
 * SystemC's library wants sc_main; the tests enter through Criterion's main, defined here
 * so that neither SystemC's nor Criterion's library main is picked by link order. */
#ifndef VIOSIM_SC_CRITERION_MAIN_H
#define VIOSIM_SC_CRITERION_MAIN_H

#include <criterion/criterion.h>

extern "C" int sc_main(int, char **) { return 0; } // as SystemC declares it

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}

#endif
