#pragma once

// The public header of `security`: what a listener needs to authenticate its clients —
// listener specifications, TLS contexts, SASL exchanges, SCRAM credentials and the mapping of
// certificate subjects to user names — and to authorize them: ACLs and the authorizer. OpenSSL and Asio's SSL types stay in the `.cc` files.

#include "security/acl.h"
#include "security/authz_audit.h"
#include "security/credentials.h"
#include "security/http_auth.h"
#include "security/jwt.h"
#include "security/listener.h"
#include "security/password_pool.h"
#include "security/principal.h"
#include "security/sasl.h"
#include "security/scram.h"
#include "security/tls.h"
