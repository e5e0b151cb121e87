// provenance.cpp -- the build's identity and the configuration hash (provenance.h).
#include "provenance.h"

#include <jansson.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "config.h"
#include "stats.h"

namespace viosim {

bool version_known() { return std::strcmp(git_commit, "unknown") != 0; }

std::string fnv1a64_text(const std::string &bytes)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char ch : bytes) {
        h ^= static_cast<unsigned char>(ch);
        h *= 0x100000001b3ull;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "fnv1a64:%016" PRIx64, h);
    return buf;
}

std::string config_hash(const vs_config &cfg)
{
    json_t *config = config_resolved_json(cfg, false);
    const std::string text = stats_json_text(config);
    json_decref(config);
    return fnv1a64_text(text);
}

json_t *build_provenance_json()
{
    json_t *p = json_object();
    json_object_set_new(p, "version", json_string(build_version));
    json_object_set_new(p, "commit", json_string(git_commit));
    const bool clean = std::strcmp(git_tree, "clean") == 0,
               dirty = std::strcmp(git_tree, "dirty") == 0;
    json_object_set_new(p, "dirty", clean || dirty ? json_boolean(dirty) : json_null());
    return p;
}

json_t *provenance_json(const vs_config &cfg)
{
    json_t *p = build_provenance_json();
    json_object_set_new(p, "config_hash", json_string(config_hash(cfg).c_str()));
    // As the "config" object writes sim.seed: a number, or its decimal text past INT64_MAX.
    if (cfg.seed > static_cast<uint64_t>(INT64_MAX))
        json_object_set_new(p, "seed", json_string(std::to_string(cfg.seed).c_str()));
    else
        json_object_set_new(p, "seed", json_integer(static_cast<json_int_t>(cfg.seed)));
    return p;
}

} // namespace viosim
