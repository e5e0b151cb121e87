// cli.h -- command-line helpers shared by the viosim subcommands.
#ifndef VIOSIM_CLI_H
#define VIOSIM_CLI_H

#include <cstring>
#include <string>

namespace viosim {

// Matches "--name VALUE" and "--name=VALUE"; advances i past what it consumed.
// Returns false if argv[i] is not this option; sets missing if the value is absent.
inline bool take_option(int argc, char **argv, int &i, const char *name, std::string &value,
                        bool &missing)
{
    const size_t len = std::strlen(name);
    const char *arg = argv[i];
    if (std::strncmp(arg, name, len) != 0)
        return false;
    if (arg[len] == '=') {
        value = arg + len + 1;
        return true;
    }
    if (arg[len] != '\0')
        return false;
    if (i + 1 >= argc) {
        missing = true;
        return true;
    }
    value = argv[++i];
    return true;
}

} // namespace viosim

#endif
