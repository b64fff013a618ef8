// Replays inputs through a libFuzzer target without libFuzzer: the `fuzz.replay.*` ctest tests
// run every saved crash (tests/fuzz/regressions/<fuzzer>/) and seed (tests/fuzz/corpus/<name>/)
// in the normal build, so a fixed crash stays fixed even where clang's libFuzzer is absent
// (under the ASan build the same replay runs with the sanitizers on).
//   usage: <fuzzer>_replay FILE_OR_DIR...
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.push_back(argv[i]);
    } else if (!fs::exists(argv[i], ec)) {
      std::printf("replay: no '%s' (no saved inputs yet)\n", argv[i]);  // git keeps no empty folders
    } else {
      std::fprintf(stderr, "replay: '%s' is neither a file nor a directory\n", argv[i]);
      return 2;
    }
  }
  for (const fs::path& p : files) {
    std::ifstream f(p, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::printf("replay: %s (%zu bytes)\n", p.c_str(), bytes.size());
    std::fflush(stdout);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());  // a bug aborts or trips a sanitizer
  }
  std::printf("replay: %zu inputs ran cleanly\n", files.size());
  return 0;
}
