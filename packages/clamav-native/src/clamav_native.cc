// FILDES for clamd: passes an open file descriptor to a local clamd over its unix socket
// (SCM_RIGHTS ancillary data, which Node's net module cannot send), so clamd scans the file
// itself whatever its permissions on the path. openRegularFile opens the file on the thread pool
// (nothing that may block runs on the event loop), memoryFile puts bytes held in memory in a
// sealed memory file (clamd then scans them without a temporary file), and sendFileDescriptor
// sends either, synchronously and without blocking, on a kept IDSESSION socket that Node owns and
// reads (clamd's reply arrives on it like any other reply of the session).
#include <node_api.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>

namespace {

// An Error with `code` and the message `text`.
napi_value make_error(napi_env env, const char* code, const std::string& text) {
  napi_value error_message, error, error_code;
  napi_create_string_utf8(env, text.c_str(), text.size(), &error_message);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &error_code);
  napi_create_error(env, error_code, error_message, &error);
  return error;
}

napi_value throw_errno(napi_env env, const char* code, const std::string& message) {
  napi_throw(env, make_error(env, code, message + ": " + std::strerror(errno)));
  return nullptr;
}

struct OpenWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::string path;
  int fd = -1;
  double size = 0;
  const char* code = nullptr;  // set on failure, with `message`
  std::string message;
};

// On a thread of the pool: open without blocking on a FIFO, keep only a regular file, and clear
// O_NONBLOCK on it so that clamd's reads through the passed descriptor are ordinary reads.
void open_execute(napi_env, void* data) {
  auto* work = static_cast<OpenWork*>(data);
  auto fail = [work](const char* code, const std::string& message, int fd) {
    work->code = code;
    work->message = message;
    if (fd >= 0) close(fd);
  };
  int fd = open(work->path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat status {};
  if (fd < 0 || fstat(fd, &status) != 0)
    return fail("EOPEN", "cannot open " + work->path + ": " + std::strerror(errno), fd);
  if (!S_ISREG(status.st_mode)) return fail("ENOTREG", "not a regular file: " + work->path, fd);
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  work->fd = fd;
  work->size = static_cast<double>(status.st_size);
}

void open_complete(napi_env env, napi_status, void* data) {
  auto* work = static_cast<OpenWork*>(data);
  if (work->code != nullptr) {
    napi_reject_deferred(env, work->deferred, make_error(env, work->code, work->message));
  } else {
    napi_value result, fd, size;
    napi_create_object(env, &result);
    napi_create_int32(env, work->fd, &fd);
    napi_create_double(env, work->size, &size);
    napi_set_named_property(env, result, "fd", fd);
    napi_set_named_property(env, result, "size", size);
    napi_resolve_deferred(env, work->deferred, result);
  }
  napi_delete_async_work(env, work->work);
  delete work;
}

// openRegularFile(path: string): Promise<{ fd: number, size: number }>
napi_value OpenRegularFile(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  size_t length = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], nullptr, 0, &length) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "openRegularFile(path) takes a path");
    return nullptr;
  }
  auto* work = new OpenWork();
  work->path.resize(length);
  napi_get_value_string_utf8(env, argv[0], work->path.data(), length + 1, &length);
  if (work->path.find('\0') != std::string::npos) {
    delete work;
    napi_throw_type_error(env, "EINVAL", "a path with a NUL byte");
    return nullptr;
  }
  napi_value promise, name;
  napi_create_promise(env, &work->deferred, &promise);
  napi_create_string_utf8(env, "clamd-fildes-open", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, open_execute, open_complete, work, &work->work);
  napi_queue_async_work(env, work->work);
  return promise;
}

// memoryFile(bytes: Uint8Array): number
// A sealed memory file (memfd) holding a copy of `bytes`: clamd scans it through the descriptor
// as it scans a file, without spooling a stream to a temporary file first. Memory only, so it
// runs on the calling thread (the JavaScript side bounds the size).
napi_value MemoryFile(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool is_typed_array = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed_array) != napi_ok || !is_typed_array) {
    napi_throw_type_error(env, "EINVAL", "memoryFile(bytes) takes a Uint8Array");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &offset);
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "memoryFile(bytes) takes a Uint8Array");
    return nullptr;
  }
  int fd = memfd_create("engine-artifact", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return throw_errno(env, "EMEMFD", "cannot create a memory file");
  const char* next = static_cast<const char*>(data);
  size_t left = length;
  while (left > 0) {
    ssize_t written = write(fd, next, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return throw_errno(env, "EMEMFD", "cannot fill the memory file");
    }
    next += written;
    left -= static_cast<size_t>(written);
  }
  // Sealed: nobody (clamd included) can change what is scanned; its offset back at the start.
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  lseek(fd, 0, SEEK_SET);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// sendFileDescriptor(socketFd: number, fileFd: number): undefined
// Sends "zFILDES\0" and one byte carrying fileFd in ONE sendmsg (all or nothing on a unix
// stream socket: a session is never left with half a command), without blocking. clamd eats the
// byte after the command's NUL as the one the descriptor came with.
napi_value SendFileDescriptor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int sock = -1;
  int file = -1;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &sock) != napi_ok ||
      napi_get_value_int32(env, argv[1], &file) != napi_ok || sock < 0 || file < 0) {
    napi_throw_type_error(env, "EINVAL", "sendFileDescriptor(socketFd, fileFd) takes two descriptors");
    return nullptr;
  }
  char bytes[] = {'z', 'F', 'I', 'L', 'D', 'E', 'S', '\0', '\0'};
  iovec vector{bytes, sizeof(bytes)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &file, sizeof(int));
  ssize_t sent;
  do {
    sent = sendmsg(sock, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(sizeof(bytes))) return nullptr;
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return throw_errno(env, "EAGAIN", "the session's socket is full");
  if (sent >= 0) {
    // Never seen on a unix stream socket for 9 bytes; the session is unusable if it happens.
    errno = EIO;
    return throw_errno(env, "EPARTIAL", "clamd's socket took part of FILDES");
  }
  if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
    return throw_errno(env, "ESEND", "clamd's session is closed");
  // Nothing was sent (ENOBUFS, ENOMEM, ETOOMANYREFS, ...): the session is still in step.
  return throw_errno(env, "ENOTSENT", "cannot pass the file descriptor");
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"openRegularFile", nullptr, OpenRegularFile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendFileDescriptor", nullptr, SendFileDescriptor, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"memoryFile", nullptr, MemoryFile, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
