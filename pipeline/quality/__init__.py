"""The corpus's data-quality suite (Great Expectations), its HTML report and the gate later stages
check."""
