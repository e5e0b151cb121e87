// reused_payload.h -- one TLM payload per call site, reset for every transaction.
//
// Constructing a tlm_generic_payload allocates its extension array, and the link and the
// root complex make one per TLP; keeping one per call site makes a TLP cost no
// allocation. b_transport can nest (a downstream read reaches the device, whose
// handler may start DMA back through the link), so a call site whose payload is still
// in use hands the nested call a payload of its own.
#ifndef VIOSIM_REUSED_PAYLOAD_H
#define VIOSIM_REUSED_PAYLOAD_H

#include <cstdint>
#include <optional>

#include <tlm>

namespace viosim {

class reused_payload {
public:
    // A payload for one transaction: the call site's own, or a fresh one if that is in
    // use. Every extension set on it must be cleared before the lease ends.
    class lease {
    public:
        explicit lease(reused_payload &slot) : slot_(slot)
        {
            if (slot_.in_use_)
                nested_.emplace();
            else
                slot_.in_use_ = true;
        }
        ~lease()
        {
            if (!nested_)
                slot_.in_use_ = false;
        }
        lease(const lease &) = delete;
        lease &operator=(const lease &) = delete;

        // Resets every field a transaction sets (what a fresh payload would hold).
        tlm::tlm_generic_payload &prepare(tlm::tlm_command command, uint64_t address,
                                          unsigned char *data, unsigned length)
        {
            tlm::tlm_generic_payload &p = nested_ ? *nested_ : slot_.payload_;
            p.set_command(command);
            p.set_address(address);
            p.set_data_ptr(data);
            p.set_data_length(length);
            p.set_streaming_width(length);
            p.set_byte_enable_ptr(nullptr);
            p.set_byte_enable_length(0);
            p.set_dmi_allowed(false);
            p.set_gp_option(tlm::TLM_MIN_PAYLOAD);
            p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
            return p;
        }

    private:
        reused_payload &slot_;
        std::optional<tlm::tlm_generic_payload> nested_;
    };

private:
    tlm::tlm_generic_payload payload_;
    bool in_use_ = false;
};

} // namespace viosim

#endif
