// keeps kiln_test_support non-empty
