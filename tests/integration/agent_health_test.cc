// Proves, with a real gRPC client speaking the standard protocols on the wire (grpc::GenericStub,
// messages encoded and decoded by field number as grpc.health.v1 and grpc.reflection.v1alpha
// define them), that a real synq-agent:
// - answers grpc.health.v1.Health/Check and /Watch with SERVING, for the server ("") and for
//   synq.agent.v1.AgentService, on its main port and on its --health-listen port;
// - answers NOT_SERVING when it refuses runs because its start-up restore failed (a settings
//   journal it cannot parse, left in its state dir), and the controller sees the same refusal;
// - serves only grpc.health.v1 on --health-listen: AgentService and reflection are UNIMPLEMENTED;
// - serves server reflection on the main port: list_services names the agent and health
//   services, and the agent's file descriptor comes back with its methods.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "tests/integration/harness.h"

namespace synq::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// grpc.health.v1.HealthCheckResponse.ServingStatus
constexpr uint64_t kServing = 1;
constexpr uint64_t kNotServing = 2;
constexpr char kAgentService[] = "synq.agent.v1.AgentService";

// A length-delimited field (wire type 2) with a one-byte tag; `value` under 128 bytes.
std::string Field(int number, const std::string& value) {
  std::string out;
  out += static_cast<char>((number << 3) | 2);
  out += static_cast<char>(value.size());
  return out + value;
}

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

std::unique_ptr<google::protobuf::UnknownFieldSet> Decode(const std::string& bytes) {
  auto fields = std::make_unique<google::protobuf::UnknownFieldSet>();
  EXPECT_TRUE(fields->ParseFromString(bytes)) << "not a protobuf message";
  return fields;
}

// Waits for the next completion on `cq`; false on failure or after 5 s.
bool Next(grpc::CompletionQueue& cq) {
  void* tag = nullptr;
  bool ok = false;
  const auto status =
      cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::seconds(5));
  return status == grpc::CompletionQueue::GOT_EVENT && ok;
}

struct Reply {
  grpc::Status status;
  std::string bytes;
};

Reply Unary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
            const std::string& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&context, method, ToBuffer(request), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  Reply reply;
  call->Finish(&response, &reply.status, reinterpret_cast<void*>(1));
  EXPECT_TRUE(Next(cq)) << method << ": no answer";
  if (reply.status.ok()) reply.bytes = FromBuffer(response);
  return reply;
}

// The status of an encoded grpc.health.v1.HealthCheckResponse{status = 1}: proto3 leaves out
// UNKNOWN (0), so a message without the field is 0.
int64_t ServingStatusOf(const std::string& bytes) {
  auto fields = Decode(bytes);
  for (int i = 0; i < fields->field_count(); ++i) {
    if (fields->field(i).number() == 1) return static_cast<int64_t>(fields->field(i).varint());
  }
  return 0;
}

// grpc.health.v1.Health/Check for `service`: the status enum, or -1 with the gRPC error.
int64_t Check(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
              grpc::Status* error = nullptr) {
  Reply reply = Unary(channel, "/grpc.health.v1.Health/Check", Field(1, service));
  if (error != nullptr) *error = reply.status;
  if (!reply.status.ok()) return -1;
  return ServingStatusOf(reply.bytes);
}

// The first message of grpc.health.v1.Health/Watch for `service` (a server stream).
int64_t WatchFirst(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&context, "/grpc.health.v1.Health/Watch", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  if (!Next(cq)) return -1;
  call->Write(ToBuffer(Field(1, service)), reinterpret_cast<void*>(2));
  if (!Next(cq)) return -1;
  call->WritesDone(reinterpret_cast<void*>(3));
  if (!Next(cq)) return -1;
  grpc::ByteBuffer message;
  call->Read(&message, reinterpret_cast<void*>(4));
  if (!Next(cq)) return -1;
  context.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  void* tag = nullptr;
  bool ok = false;
  while (cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::seconds(5)) ==
             grpc::CompletionQueue::GOT_EVENT &&
         tag != reinterpret_cast<void*>(5)) {
  }
  return ServingStatusOf(FromBuffer(message));
}

// One request/response exchange on grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo
// (a bidirectional stream). The response's bytes, or the call's error.
Reply Reflect(const std::shared_ptr<grpc::Channel>& channel, const std::string& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  Reply reply;
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  grpc::ByteBuffer message;
  bool read = Next(cq);
  if (read) {
    call->Write(ToBuffer(request), reinterpret_cast<void*>(2));
    read = Next(cq);
  }
  if (read) {
    call->WritesDone(reinterpret_cast<void*>(3));
    read = Next(cq);
  }
  if (read) {
    call->Read(&message, reinterpret_cast<void*>(4));
    read = Next(cq);
  }
  if (!read) {
    // The stream failed: drain it to learn why.
    call->Finish(&reply.status, reinterpret_cast<void*>(5));
    void* tag = nullptr;
    bool ok = false;
    while (cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::seconds(5)) ==
               grpc::CompletionQueue::GOT_EVENT &&
           tag != reinterpret_cast<void*>(5)) {
    }
    if (reply.status.ok()) reply.status = grpc::Status(grpc::StatusCode::UNKNOWN, "no reply");
    return reply;
  }
  reply.bytes = FromBuffer(message);
  call->Finish(&reply.status, reinterpret_cast<void*>(5));
  void* tag = nullptr;
  bool ok = false;
  while (cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::seconds(5)) ==
             grpc::CompletionQueue::GOT_EVENT &&
         tag != reinterpret_cast<void*>(5)) {
  }
  return reply;
}

// Fields `number` (length-delimited) of a decoded message, as bytes.
std::vector<std::string> Bytes(const google::protobuf::UnknownFieldSet& fields, int number) {
  std::vector<std::string> out;
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& f = fields.field(i);
    if (f.number() == number && f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(f.length_delimited());
    }
  }
  return out;
}

class AgentHealth : public ::testing::Test {
 protected:
  // Starts an agent on a unix socket with --health-listen on 127.0.0.1 (port 0, read back).
  void StartAgent() {
    socket_ = dir_.path() + "/agent.sock";
    agent_ = Spawn({Binary("agent/synq-agent"), "--listen", "unix:" + socket_, "--state-dir",
                    dir_.path() + "/state", "--port-file", dir_.path() + "/addr", "--health-listen",
                    "127.0.0.1:0", "--health-port-file", dir_.path() + "/health-addr"},
                   dir_.path() + "/agent.log");
    ASSERT_FALSE(WaitForPortFile(dir_.path() + "/addr").empty()) << "agent did not start";
    health_address_ = WaitForPortFile(dir_.path() + "/health-addr");
    ASSERT_FALSE(health_address_.empty());
    main_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    probe_ = grpc::CreateChannel(health_address_, grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    // Close the client side first: the agent's shutdown then has no open calls to wait for.
    main_.reset();
    probe_.reset();
    if (agent_ > 0) {
      kill(agent_, SIGTERM);
      WaitFor(agent_, seconds(10));
    }
  }

  TempDir dir_;
  pid_t agent_ = -1;
  std::string socket_;
  std::string health_address_;
  std::shared_ptr<grpc::Channel> main_;
  std::shared_ptr<grpc::Channel> probe_;
};

TEST_F(AgentHealth, ServingOnMainAndProbePortsForServerAndAgentService) {
  StartAgent();
  for (const auto& [channel, port] : {std::pair{main_, "main"}, std::pair{probe_, "probe"}}) {
    EXPECT_EQ(Check(channel, ""), kServing) << port;
    EXPECT_EQ(Check(channel, kAgentService), kServing) << port;
    EXPECT_EQ(WatchFirst(channel, ""), kServing) << port;
    EXPECT_EQ(WatchFirst(channel, kAgentService), kServing) << port;
    // A service the agent does not have: the protocol's NOT_FOUND, not a made-up status.
    grpc::Status error;
    EXPECT_EQ(Check(channel, "no.such.Service", &error), -1) << port;
    EXPECT_EQ(error.error_code(), grpc::StatusCode::NOT_FOUND) << port;
  }
}

TEST_F(AgentHealth, NotServingWhileTheStartRestoreFailedAndRunsAreRefused) {
  // A settings journal the agent cannot parse: it leaves it for a human and refuses runs
  // (agent/kernel/sysctl_settings.cc RestoreFromJournal).
  std::filesystem::create_directories(dir_.path() + "/state");
  dir_.Write("state/settings-journal.json", "{ this is not json");
  StartAgent();
  for (const auto& [channel, port] : {std::pair{main_, "main"}, std::pair{probe_, "probe"}}) {
    EXPECT_EQ(Check(channel, ""), kNotServing) << port;
    EXPECT_EQ(Check(channel, kAgentService), kNotServing) << port;
    EXPECT_EQ(WatchFirst(channel, ""), kNotServing) << port;
  }
  // The controller sees the same state through GetHostInfo: the agent refuses runs.
  ProcessResult info = RunProcess({Binary("controller/synq"), "info", "unix:" + socket_});
  EXPECT_NE(info.output.find("REFUSES RUNS"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("corrupt"), std::string::npos) << info.output;
}

TEST_F(AgentHealth, ProbePortServesHealthOnly) {
  StartAgent();
  Reply info = Unary(probe_, "/synq.agent.v1.AgentService/GetHostInfo", "");
  EXPECT_EQ(info.status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << info.status.error_message();
  Reply listed = Reflect(probe_, Field(7, "*"));
  EXPECT_EQ(listed.status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << listed.status.error_message();
  // The same call on the main port works: the probe port's refusal is not a broken client.
  EXPECT_TRUE(Unary(main_, "/synq.agent.v1.AgentService/GetHostInfo", "").status.ok());
}

TEST_F(AgentHealth, ReflectionListsTheAgentAndHealthServicesAndDescribesTheAgent) {
  StartAgent();
  // ServerReflectionRequest{list_services = 7}
  Reply listed = Reflect(main_, Field(7, "*"));
  ASSERT_TRUE(listed.status.ok()) << listed.status.error_message();
  // ServerReflectionResponse{list_services_response = 6 {service = 1 {name = 1}}}
  std::set<std::string> services;
  for (const auto& list : Bytes(*Decode(listed.bytes), 6)) {
    for (const auto& service : Bytes(*Decode(list), 1)) {
      for (const auto& name : Bytes(*Decode(service), 1)) services.insert(name);
    }
  }
  EXPECT_TRUE(services.count(kAgentService)) << ::testing::PrintToString(services);
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << ::testing::PrintToString(services);
  EXPECT_TRUE(services.count("grpc.reflection.v1alpha.ServerReflection"))
      << ::testing::PrintToString(services);

  // ServerReflectionRequest{file_containing_symbol = 4} -> file_descriptor_response = 4
  // {file_descriptor_proto = 1 (repeated bytes)}: the agent's proto file, with its methods.
  Reply described = Reflect(main_, Field(4, kAgentService));
  ASSERT_TRUE(described.status.ok()) << described.status.error_message();
  std::set<std::string> methods;
  for (const auto& response : Bytes(*Decode(described.bytes), 4)) {
    for (const auto& file : Bytes(*Decode(response), 1)) {
      google::protobuf::FileDescriptorProto proto;
      ASSERT_TRUE(proto.ParseFromString(file));
      for (const auto& service : proto.service()) {
        if (absl::StrCat(proto.package(), ".", service.name()) != kAgentService) continue;
        for (const auto& method : service.method()) methods.insert(method.name());
      }
    }
  }
  for (const char* method : {"GetHostInfo", "BeginRun", "StartFloods", "Watch", "EndRun"}) {
    EXPECT_TRUE(methods.count(method)) << method << " in " << ::testing::PrintToString(methods);
  }
}

}  // namespace
}  // namespace synq::testing
