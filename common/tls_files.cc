#include "common/tls_files.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/unique_fd.h"

namespace synq::common {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using UniqueX509 = std::unique_ptr<X509, X509Free>;

// "setting path: reason", the shape of every error here.
absl::Status FileError(const std::string& name, const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(name, " ", path, ": ", why));
}

// The oldest error OpenSSL queued, as text; clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  std::string text = code == 0                       ? "unknown OpenSSL error"
                     : ERR_reason_error_string(code) ? ERR_reason_error_string(code)
                                                     : "unknown OpenSSL error";
  ERR_clear_error();
  return text;
}

absl::StatusOr<std::string> ReadFile(const std::string& name, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": required"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileError(name, path, absl::StrCat("cannot read: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return FileError(name, path, "cannot read");
  return text.str();
}

std::string FormatTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "an unreadable time";
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string Subject(X509* cert) {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

std::vector<std::string> AltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      out.push_back(absl::StrCat("DNS:", absl::string_view(reinterpret_cast<const char*>(
                                                               ASN1_STRING_get0_data(n->d.dNSName)),
                                                           ASN1_STRING_length(n->d.dNSName))));
    } else if (n->type == GEN_IPADD) {
      const unsigned char* p = ASN1_STRING_get0_data(n->d.iPAddress);
      const int len = ASN1_STRING_length(n->d.iPAddress);
      char buf[64] = {};
      if (len == 4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
      } else if (len == 16) {
        std::string hex;
        for (int k = 0; k < 16; k += 2) {
          if (k > 0) hex += ":";
          absl::StrAppend(&hex, absl::Hex((p[k] << 8) | p[k + 1]));
        }
        std::snprintf(buf, sizeof buf, "%s", hex.c_str());
      }
      out.push_back(absl::StrCat("IP:", buf));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Not yet valid or expired: the reason with the date; OK when valid now.
absl::Status CheckValidity(X509* cert, const std::string& name, const std::string& path,
                           absl::string_view what) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return FileError(name, path,
                     absl::StrCat(what, " is not yet valid (valid from ",
                                  FormatTime(X509_get0_notBefore(cert)), ")"));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return FileError(name, path,
                     absl::StrCat(what, " expired on ", FormatTime(X509_get0_notAfter(cert))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<UniqueX509>> ParseCertificates(const std::string& pem,
                                                          const std::string& name,
                                                          const std::string& path) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<UniqueX509> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the read that ended the loop
  if (certs.empty()) {
    return FileError(name, path, "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)");
  }
  return certs;
}

// Refuses to ask for a passphrase on the terminal.
int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsFiles(const TlsFileSet& files) {
  TlsMaterial m;
  auto cert_pem = ReadFile(files.cert_name, files.cert);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadFile(files.key_name, files.key);
  if (!key_pem.ok()) return key_pem.status();
  auto ca_pem = ReadFile(files.ca_name, files.ca);
  if (!ca_pem.ok()) return ca_pem.status();

  auto certs = ParseCertificates(*cert_pem, files.cert_name, files.cert);
  if (!certs.ok()) return certs.status();
  X509* cert = certs->front().get();
  auto cas = ParseCertificates(*ca_pem, files.ca_name, files.ca);
  if (!cas.ok()) return cas.status();

  std::unique_ptr<BIO, BioFree> key_bio(
      BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    if (absl::StrContains(*key_pem, "ENCRYPTED")) {
      return FileError(files.key_name, files.key,
                       "the private key is encrypted; synq needs it without a passphrase");
    }
    return FileError(files.key_name, files.key,
                     "not a PEM private key (no -----BEGIN PRIVATE KEY----- block)");
  }

  if (absl::Status s = CheckValidity(cert, files.cert_name, files.cert, "the certificate");
      !s.ok()) {
    return s;
  }
  for (const auto& ca : *cas) {
    if (absl::Status s = CheckValidity(ca.get(), files.ca_name, files.ca,
                                       absl::StrCat("the CA certificate ", Subject(ca.get())));
        !s.ok()) {
      return s;
    }
  }
  if (X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return FileError(files.key_name, files.key,
                     absl::StrCat("the key does not match the certificate in ", files.cert_name,
                                  " ", files.cert, " (", Subject(cert), ")"));
  }

  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const auto& ca : *cas) X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (size_t i = 1; i < certs->size(); ++i) sk_X509_push(chain, (*certs)[i].get());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert, chain);
  const int verified = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(chain);
  ERR_clear_error();
  if (verified != 1) {
    char issuer[512];
    X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof issuer);
    return FileError(
        files.cert_name, files.cert,
        absl::StrCat("the certificate (issuer ", issuer, ") is not signed by the CA in ",
                     files.ca_name, " ", files.ca, ": ", X509_verify_cert_error_string(error)));
  }

  m.cert_pem = *std::move(cert_pem);
  m.key_pem = *std::move(key_pem);
  m.ca_pem = *std::move(ca_pem);
  m.subject = Subject(cert);
  m.names = AltNames(cert);
  return m;
}

namespace {

// A TCP connection to "host:port" ("[v6]:port"), with send/receive timeouts.
absl::StatusOr<UniqueFd> ConnectTcp(const std::string& address, std::chrono::milliseconds timeout,
                                    std::string* host_out) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(address, ": expected HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  *host_out = host;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rc != 0) {
    return absl::UnavailableError(absl::StrCat(address, ": ", gai_strerror(rc)));
  }
  std::string last = "no address";
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    UniqueFd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) continue;
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      freeaddrinfo(list);
      return fd;
    }
    last = std::strerror(errno);
  }
  freeaddrinfo(list);
  return absl::UnavailableError(absl::StrCat("cannot connect to ", address, ": ", last));
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

absl::Status DiagnoseTlsHandshake(const std::string& address, const std::string& server_name,
                                  const TlsMaterial& material, const TlsFileSet& files,
                                  std::chrono::milliseconds timeout) {
  std::string host;
  auto fd = ConnectTcp(address, timeout, &host);
  if (!fd.ok()) return fd.status();
  const std::string name = server_name.empty() ? host : server_name;

  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  // Verification runs and is recorded, but does not stop the handshake: we want to see the
  // agent's certificate and whether the agent accepts ours, then name the first problem.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  {
    auto cas = ParseCertificates(material.ca_pem, files.ca_name, files.ca);
    if (!cas.ok()) return cas.status();
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    for (const auto& ca : *cas) X509_STORE_add_cert(store, ca.get());
    auto certs = ParseCertificates(material.cert_pem, files.cert_name, files.cert);
    if (!certs.ok()) return certs.status();
    SSL_CTX_use_certificate(ctx.get(), certs->front().get());
    std::unique_ptr<BIO, BioFree> key_bio(
        BIO_new_mem_buf(material.key_pem.data(), static_cast<int>(material.key_pem.size())));
    std::unique_ptr<EVP_PKEY, KeyFree> key(
        PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
    if (key != nullptr) SSL_CTX_use_PrivateKey(ctx.get(), key.get());
  }
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd->get());
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  if (IsIpLiteral(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    SSL_set1_host(ssl.get(), name.c_str());
  }
  ERR_clear_error();
  if (SSL_connect(ssl.get()) != 1) {
    const std::string why = OpenSslError();
    if (absl::StrContains(why, "wrong version number") || absl::StrContains(why, "packet length")) {
      return absl::UnavailableError(absl::StrCat(
          "agent ", address, " does not speak TLS (an agent started without --tls-cert?)"));
    }
    return absl::UnavailableError(absl::StrCat("agent ", address, ": TLS handshake failed: ", why));
  }
  UniqueX509 peer(SSL_get1_peer_certificate(ssl.get()));
  const long verify = SSL_get_verify_result(ssl.get());
  if (verify != X509_V_OK && peer != nullptr) {
    const std::string agent_cert =
        absl::StrCat("the agent's certificate (", Subject(peer.get()), ")");
    switch (verify) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return absl::UnavailableError(absl::StrCat(
            "agent ", address, ": wrong name: ", agent_cert, " is for ",
            absl::StrJoin(AltNames(peer.get()), ", "), ", not ", name,
            " (set --tls-server-name or hosts.NAME.tls.server_name to a name it holds)"));
      case X509_V_ERR_CERT_HAS_EXPIRED:
        return absl::UnavailableError(absl::StrCat("agent ", address, ": ", agent_cert,
                                                   " expired on ",
                                                   FormatTime(X509_get0_notAfter(peer.get()))));
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return absl::UnavailableError(
            absl::StrCat("agent ", address, ": ", agent_cert, " is not yet valid (from ",
                         FormatTime(X509_get0_notBefore(peer.get())), ")"));
      default: {
        char issuer[512];
        X509_NAME_oneline(X509_get_issuer_name(peer.get()), issuer, sizeof issuer);
        return absl::UnavailableError(
            absl::StrCat("agent ", address, ": wrong CA: ", agent_cert, ", issued by ", issuer,
                         ", is not signed by the CA in ", files.ca_name, " ", files.ca, " (",
                         X509_verify_cert_error_string(verify), ")"));
      }
    }
  }
  // TLS 1.3: the server judges our certificate after our side of the handshake is done; its
  // refusal comes as an alert on the first read. Silence until the timeout means it accepted.
  char byte = 0;
  ERR_clear_error();
  const int read = SSL_read(ssl.get(), &byte, 1);
  if (read <= 0 && SSL_get_error(ssl.get(), read) == SSL_ERROR_SSL) {
    // gRPC's server closes without an alert, so the reason is often just "unexpected eof".
    return absl::PermissionDeniedError(absl::StrCat(
        "agent ", address, " refused our certificate (", files.cert_name, " ", files.cert, ", ",
        material.subject, ") and closed the connection (", OpenSslError(),
        "): the agent trusts another CA (its --tls-ca) than the one that signed ours"));
  }
  return absl::OkStatus();
}

bool ServesTls(const std::string& address, std::chrono::milliseconds timeout) {
  std::string host;
  auto fd = ConnectTcp(address, timeout, &host);
  if (!fd.ok()) return false;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd->get());
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  ERR_clear_error();
  if (SSL_connect(ssl.get()) == 1) return true;
  // A server that wants a certificate we did not send (TLS 1.2) ends the handshake with an alert:
  // it still speaks TLS. A plaintext gRPC server answers with bytes that are no TLS record.
  const std::string why = OpenSslError();
  return absl::StrContains(why, "alert");
}

}  // namespace synq::common
