console.error("file tools");
