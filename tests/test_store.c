#include "testutil.h"
static void test_placeholder(void) { T_CHECK(1, "placeholder"); }
int main(void) { T_RUN(test_placeholder); return t_done(); }
