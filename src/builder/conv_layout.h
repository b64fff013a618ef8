// Conv-layout autotuning (BuildOptions::conv_layout = kAuto): the decision rule, apart from the
// timing so it can be tested without a GPU. build() builds the engine NCHW and NHWC, measures
// GPU compute time of each at the profiles' opt and min shapes, and asks preferNhwc.
#pragma once

#include <string>
#include <vector>

namespace ramjet::builder {

// NHWC only when it wins overall -- the geometric mean of the NHWC/NCHW time ratios at the opt
// and min shapes is below 0.97 (a 3% margin: NHWC costs layout transposes at the boundaries) --
// and it loses nowhere by more than 10%. Pass the opt times twice for a static profile.
bool preferNhwc(double nchw_opt_ms, double nhwc_opt_ms, double nchw_min_ms, double nhwc_min_ms);

// True when the NhwcLayout pass is switched off by name (or "all") in `disabled_passes` or in
// RAMJET_DISABLE_PASSES (`env`, may be null).
bool nhwcLayoutDisabled(const std::vector<std::string>& disabled_passes, const char* env);

}  // namespace ramjet::builder
