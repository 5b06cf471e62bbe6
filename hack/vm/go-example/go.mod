module example.com/vmdkmount

go 1.18
