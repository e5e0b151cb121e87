// fuzz_config.cpp -- the configuration-file and `--set` parser.
//
// Input: a config file's text, optionally followed by a NUL byte and `--set`
// assignments, one per line. Promises checked:
//   - every rejection carries a one-line message (no crash, no silent acceptance of
//     garbage, no multi-line error, no control character from the input);
//   - a configuration that is accepted and passes the cross-parameter checks resolves to
//     a JSON document that is itself a valid config file giving the same configuration
//     (what `stats.json` records is enough to rerun the point).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include <jansson.h>

#include "config.h"

using namespace viosim; // the platform's modules and configuration (platform/)

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            std::fprintf(stderr, "fuzz invariant broken: %s: %s\n", #cond, (what).c_str()); \
            std::abort();                                                                    \
        }                                                                                    \
    } while (0)

static std::string temp_path()
{
    const char *dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/viosim-fuzz-config-" +
           std::to_string(getpid()) + ".json";
}

static bool write_file(const std::string &path, const std::string &text)
{
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f)
        return false;
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    return std::fclose(f) == 0 && ok;
}

static void check_error(const param_error &err)
{
    CHECK(!err.message.empty(), std::string("empty error message"));
    for (const char ch : err.message) // echoed input is escaped (config_escaped)
        CHECK(static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f, err.message);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const std::string input(reinterpret_cast<const char *>(data), size);
    const size_t nul = input.find('\0');
    const std::string file = input.substr(0, nul);
    const std::string sets = nul == std::string::npos ? std::string() : input.substr(nul + 1);
    const std::string path = temp_path();

    vs_config cfg = config_defaults();
    param_error err;
    if (!file.empty()) {
        if (!write_file(path, file))
            return 0;
        if (!config_apply_file(cfg, path, err)) {
            check_error(err);
            std::remove(path.c_str());
            return 0;
        }
    }
    size_t at = 0;
    while (at < sets.size()) {
        size_t end = sets.find('\n', at);
        if (end == std::string::npos)
            end = sets.size();
        const std::string line = sets.substr(at, end - at);
        at = end + 1;
        if (!config_apply_set(cfg, line, err)) {
            check_error(err);
            std::remove(path.c_str());
            return 0;
        }
    }
    if (!config_validate(cfg, err)) {
        check_error(err);
        std::remove(path.c_str());
        return 0;
    }

    // Round trip: the resolved configuration, as a file, gives the same configuration.
    json_t *resolved = config_resolved_json(cfg, true);
    char *text = json_dumps(resolved, JSON_SORT_KEYS);
    json_decref(resolved);
    CHECK(text != nullptr, std::string("resolved configuration does not serialise"));
    const bool written = write_file(path, text);
    std::free(text);
    if (written) {
        vs_config again = config_defaults();
        param_error err2;
        CHECK(config_apply_file(again, path, err2), err2.message);
        CHECK(config_resolved(again) == config_resolved(cfg),
              std::string("resolved configuration reads back differently"));
    }
    std::remove(path.c_str());
    return 0;
}
