#include "kiln/storage.h"

#include "kiln/backend.h"
#include "kiln/error.h"

namespace kiln {

StorageImpl::StorageImpl(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  Backend* b = backend_for(device.type);
  KILN_CHECK(b != nullptr, "alloc", "device type ", device_type_name(device.type), " is not compiled in");
  data_ = nbytes ? b->allocate(nbytes, device.index) : nullptr;
}

StorageImpl::StorageImpl(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {
  if (!deleter_) deleter_ = [](void*) {};  // borrowed memory: never freed by kiln
}

StorageImpl::~StorageImpl() {
  if (deleter_) {
    deleter_(data_);
  } else if (data_) {
    backend_for(device_.type)->deallocate(data_, nbytes_, device_.index);
  }
}

}  // namespace kiln
